package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ocifs/ocifs/builder"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1048576": 1 << 20, "512M": 512 << 20, "2G": 2 << 30, "2GiB": 2 << 30, "1.5g": 3 << 29,
		"64k": 64 << 10, "1T": 1 << 40, " 3MB ": 3 << 20,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "lots", "-1G", "0", "1X", "G", "1e400"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestClassifyBuild(t *testing.T) {
	for _, c := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("x: %w", builder.ErrMissingTool), exitPrereq},
		{fmt.Errorf("x: %w", builder.ErrNoSpace), exitFailure},
		{fmt.Errorf("x: %w", &builder.TooSmallError{Have: 1, Need: 2}), exitFailure},
		{fmt.Errorf("x: %w", &builder.ContentError{Path: "a", Msg: "b"}), exitImage},
		{fmt.Errorf("x: %w", &builder.CheckError{Stage: "s", Code: 4}), exitFailure},
	} {
		code, hint := classify(c.err)
		if code != c.code || hint == "" && !errors.As(c.err, new(*builder.ContentError)) {
			t.Errorf("%v: exit %d, hint %q; want exit %d and a hint", c.err, code, hint, c.code)
		}
	}
}
