package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
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
	withGlobalFlags(probe, "")
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

// TestLateFlagsRejected: urfave/cli stops parsing flags at the first
// argument, so a flag typed after the arguments would be taken as one;
// `cache prune REF --dry-run` pruned for real. Such a command now fails
// with a usage error before doing anything, and usage errors name their
// command in the hint.
func TestLateFlagsRejected(t *testing.T) {
	cacheDir := t.TempDir()
	t.Setenv("OCIFS_CACHE_DIR", cacheDir)
	cases := []struct {
		args  []string
		wants []string
	}{
		{[]string{"cache", "prune", "oci:/nowhere", "--dry-run"}, []string{"ocifs: cache prune: flag --dry-run after the arguments", "hint: put flags before the arguments: ocifs cache prune --dry-run"}},
		{[]string{"inspect", "oci:/nowhere", "--json"}, []string{"inspect: flag --json after the arguments"}},
		{[]string{"pull", "oci:/nowhere", "-v"}, []string{"pull: flag -v after the arguments"}},
		{[]string{"cache", "ls", "extra"}, []string{"cache ls takes no arguments", "hint: run 'ocifs cache ls --help' for usage"}},
		{[]string{"pull", "--bogus", "x"}, []string{"hint: run 'ocifs pull --help' for usage"}},
	}
	for _, c := range cases {
		var stderr bytes.Buffer
		if code := run(append([]string{"ocifs"}, c.args...), &stderr); code != exitUsage {
			t.Errorf("ocifs %v: exit %d, want %d\n%s", c.args, code, exitUsage, stderr.String())
		}
		for _, w := range c.wants {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("ocifs %v: stderr lacks %q:\n%s", c.args, w, stderr.String())
			}
		}
	}
	if ents, _ := os.ReadDir(cacheDir); len(ents) != 0 {
		t.Errorf("a rejected command touched the cache: %v", ents)
	}
}

// TestBadRefExitCode: a reference that does not parse is an image problem
// (exit 3) in every command that takes one, cache prune included (it said
// 2, a usage error).
func TestBadRefExitCode(t *testing.T) {
	t.Setenv("OCIFS_CACHE_DIR", t.TempDir())
	for _, args := range [][]string{{"cache", "prune", "BAD REF"}, {"pull", "BAD REF"}} {
		var stderr bytes.Buffer
		if code := run(append([]string{"ocifs"}, args...), &stderr); code != exitImage || !strings.Contains(stderr.String(), "BAD REF") {
			t.Errorf("ocifs %v: exit %d, want %d\n%s", args, code, exitImage, stderr.String())
		}
	}
}
