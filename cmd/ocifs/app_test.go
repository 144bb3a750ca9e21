package main

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/urfave/cli/v2"
)

// globalsOf runs the CLI with args against a probe command and returns
// the globals it saw.
func globalsOf(t *testing.T, args ...string) *globals {
	t.Helper()
	var got *globals
	probe := &cli.Command{Name: "probe", Action: func(c *cli.Context) error {
		var err error
		got, err = getGlobals(c)
		return err
	}}
	withGlobalFlags(probe)
	app := newApp(&bytes.Buffer{})
	app.Commands = []*cli.Command{probe}
	if err := app.Run(append([]string{"ocifs"}, args...)); err != nil {
		t.Fatalf("ocifs %v: %v", args, err)
	}
	return got
}

func TestGlobalFlagPrecedence(t *testing.T) {
	t.Setenv("OCIFS_CACHE_DIR", "/from/env")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"probe"}, "/from/env"},
		{[]string{"--cache-dir", "/before", "probe"}, "/before"},
		{[]string{"probe", "--cache-dir", "/after"}, "/after"},
		{[]string{"--cache-dir", "/before", "probe", "--cache-dir", "/after"}, "/after"},
	}
	for _, tc := range cases {
		if got := globalsOf(t, tc.args...).CacheDir; got != tc.want {
			t.Errorf("ocifs %v: cache dir %q; want %q", tc.args, got, tc.want)
		}
	}
	t.Setenv("OCIFS_CACHE_DIR", "")
	if got := globalsOf(t, "probe").CacheDir; got != "/xdg/ocifs" {
		t.Errorf("default cache dir %q; want /xdg/ocifs", got)
	}
	rel := globalsOf(t, "probe", "--cache-dir", "rel").CacheDir
	if !filepath.IsAbs(rel) {
		t.Errorf("relative --cache-dir kept relative: %q", rel)
	}
	g := globalsOf(t, "--platform", "linux/arm64", "probe", "--insecure")
	if g.Platform != "linux/arm64" || !g.Insecure {
		t.Errorf("flags before and after the command: %+v", g)
	}
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"ocifs", "--no-such-flag"}, exitUsage},
		{[]string{"ocifs", "pull"}, exitUsage},
		{[]string{"ocifs", "inspect", "a", "b", "c"}, exitUsage},
		{[]string{"ocifs", "pull", "--platform", "nonsense", "x"}, exitUsage},
		{[]string{"ocifs", "--cache-dir", t.TempDir(), "pull", "UPPER/case:ref"}, exitImage},
	} {
		var stderr bytes.Buffer
		if got := run(tc.args, &stderr); got != tc.want {
			t.Errorf("%v: exit %d; want %d (stderr %q)", tc.args, got, tc.want, stderr.String())
		}
	}
}
