package fswalk

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Field names a compared property of a Record, for DiffOptions.Ignore.
type Field uint

const (
	FType Field = 1 << iota
	FPerm
	FOwner
	FSize
	FContent
	FTarget
	FRdev
	FXattrs
	FMTime
	FNlink
	FLinks
)

// DiffOptions tunes Diff. The zero value compares every field, mtime to
// the second, and ignores no path.
type DiffOptions struct {
	// IgnorePaths are dropped with everything under them, e.g. "lost+found".
	IgnorePaths []string
	// Ignore is the set of fields not compared.
	Ignore Field
	// MTimeGranularity truncates mtimes before comparing (default 1s).
	MTimeGranularity time.Duration
}

// DefaultDiff is what most differential tests want: an ext4 image's
// lost+found ignored, mtimes not compared.
var DefaultDiff = DiffOptions{IgnorePaths: []string{"lost+found"}, Ignore: FMTime}

// Diff lists the differences between walks a and b, one line per
// difference, sorted by path; nil means equal.
func Diff(a, b []Record, opts DiffOptions) []string {
	am, bm := index(a, opts), index(b, opts)
	var paths []string
	for p := range am {
		paths = append(paths, p)
	}
	for p := range bm {
		if _, ok := am[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	var out []string
	for _, p := range paths {
		ra, inA := am[p]
		rb, inB := bm[p]
		switch {
		case !inB:
			out = append(out, fmt.Sprintf("%s: only in a (%s)", p, ra.Type))
		case !inA:
			out = append(out, fmt.Sprintf("%s: only in b (%s)", p, rb.Type))
		default:
			out = append(out, compare(ra, rb, opts)...)
		}
	}
	return out
}

func index(recs []Record, opts DiffOptions) map[string]Record {
	m := make(map[string]Record, len(recs))
	for _, r := range recs {
		if ignored(r.Path, opts.IgnorePaths) {
			continue
		}
		if len(r.Links) > 0 {
			r.Links = keepLinks(r.Links, opts.IgnorePaths)
		}
		m[r.Path] = r
	}
	return m
}

func ignored(p string, ignore []string) bool {
	for _, ig := range ignore {
		ig = strings.Trim(ig, "/")
		if p == ig || strings.HasPrefix(p, ig+"/") {
			return true
		}
	}
	return false
}

func keepLinks(links, ignore []string) []string {
	var out []string
	for _, l := range links {
		if !ignored(l, ignore) {
			out = append(out, l)
		}
	}
	if len(out) < 2 {
		return nil
	}
	return out
}

func compare(a, b Record, o DiffOptions) []string {
	var out []string
	add := func(f Field, what string, va, vb any) {
		if o.Ignore&f == 0 && fmt.Sprint(va) != fmt.Sprint(vb) {
			out = append(out, fmt.Sprintf("%s: %s %v != %v", a.Path, what, va, vb))
		}
	}
	add(FType, "type", a.Type, b.Type)
	if a.Type != b.Type {
		return out // the rest would only repeat the type difference
	}
	add(FPerm, "mode", fmt.Sprintf("%04o", a.Perm), fmt.Sprintf("%04o", b.Perm))
	add(FOwner, "owner", fmt.Sprintf("%d:%d", a.UID, a.GID), fmt.Sprintf("%d:%d", b.UID, b.GID))
	if a.Type != Dir {
		add(FSize, "size", a.Size, b.Size)
		add(FNlink, "nlink", a.Nlink, b.Nlink)
		add(FLinks, "hardlinks", a.Links, b.Links)
	}
	add(FContent, "sha256", short(a.SHA256), short(b.SHA256))
	add(FTarget, "target", fmt.Sprintf("%q", a.Target), fmt.Sprintf("%q", b.Target))
	add(FRdev, "rdev", fmt.Sprintf("%d:%d", a.Major, a.Minor), fmt.Sprintf("%d:%d", b.Major, b.Minor))
	if o.Ignore&FXattrs == 0 {
		out = append(out, diffXattrs(a.Path, a.Xattrs, b.Xattrs)...)
	}
	g := o.MTimeGranularity
	if g <= 0 {
		g = time.Second
	}
	add(FMTime, "mtime", a.MTime.Truncate(g).UTC().Format(time.RFC3339Nano), b.MTime.Truncate(g).UTC().Format(time.RFC3339Nano))
	return out
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func diffXattrs(p string, a, b map[string]string) []string {
	names := map[string]bool{}
	for n := range a {
		names[n] = true
	}
	for n := range b {
		names[n] = true
	}
	var sorted []string
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	var out []string
	for _, n := range sorted {
		va, inA := a[n]
		vb, inB := b[n]
		switch {
		case !inB:
			out = append(out, fmt.Sprintf("%s: xattr %s only in a (%q)", p, n, va))
		case !inA:
			out = append(out, fmt.Sprintf("%s: xattr %s only in b (%q)", p, n, vb))
		case va != vb:
			out = append(out, fmt.Sprintf("%s: xattr %s %q != %q", p, n, va, vb))
		}
	}
	return out
}

// String renders r on one line, for logs and failure messages.
func (r Record) String() string {
	s := fmt.Sprintf("%s %s %04o %d:%d", r.Path, r.Type, r.Perm, r.UID, r.GID)
	switch r.Type {
	case File:
		s += fmt.Sprintf(" size=%d sha256=%s", r.Size, short(r.SHA256))
	case Symlink:
		s += fmt.Sprintf(" -> %q", r.Target)
	case Char, Block:
		s += fmt.Sprintf(" rdev=%d:%d", r.Major, r.Minor)
	}
	if len(r.Links) > 0 {
		s += fmt.Sprintf(" links=%v", r.Links)
	}
	if len(r.Xattrs) > 0 {
		s += fmt.Sprintf(" xattrs=%q", r.Xattrs)
	}
	return s
}
