package fusefs

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/overlay"
)

var (
	capV2     = "\x00\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	capV3     = "\x00\x00\x00\x03\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xe8\x03\x00\x00"
	capV3root = "\x00\x00\x00\x03\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	capV1     = "\x00\x00\x00\x01\x00\x20\x00\x00\x00\x00\x00\x00"
	// aclAccess is user::rw- group::r-- other::r--.
	aclAccess = "\x02\x00\x00\x00" + "\x01\x00\x06\x00\xff\xff\xff\xff" + "\x04\x00\x04\x00\xff\xff\xff\xff" + "\x20\x00\x04\x00\xff\xff\xff\xff"
)

func listXattrs(t *testing.T, p string) []string {
	t.Helper()
	sz, err := unix.Llistxattr(p, nil)
	if err != nil {
		t.Fatalf("llistxattr %s: %v", p, err)
	}
	buf := make([]byte, sz)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		t.Fatalf("llistxattr %s: %v", p, err)
	}
	var names []string
	for _, s := range strings.Split(string(buf[:n]), "\x00") {
		if s != "" {
			names = append(names, s)
		}
	}
	return names
}

func getXattr(p, name string) (string, error) {
	sz, err := unix.Lgetxattr(p, name, nil)
	if err != nil {
		return "", err
	}
	buf := make([]byte, sz)
	n, err := unix.Lgetxattr(p, name, buf)
	return string(buf[:n]), err
}

// TestXattrs lists and reads every attribute through the mount: the
// image's, minus those the kernel refuses, with values byte for byte.
func TestXattrs(t *testing.T) {
	m := new(memImage).addLayer(
		file("ping", "ELF", xattr("security.capability", capV2)),
		file("ping3", "ELF", xattr("security.capability", capV3)),
		file("ping3root", "ELF", xattr("security.capability", capV3root)),
		file("bad", "ELF", xattr("security.capability", capV1), xattr("user.ok", "yes")),
		file("short", "ELF", xattr("security.capability", "\x01\x02")),
		file("f", "x", xattr("user.mime", "text/plain"), xattr("user.bin", "\x00\xff\x00"),
			xattr("trusted.overlay.opaque", "y"), xattr("security.selinux", "system_u:object_r:bin_t:s0")),
		file("acl", "x", xattr("system.posix_acl_access", aclAccess)),
		file("badacl", "x", xattr("system.posix_acl_access", "\x02\x00\x00\x00")),
		dir("d", xattr("user.dir", "1")),
		symlink("l", "f", xattr("user.onlink", "no"), xattr("security.selinux", "lnk")),
		fifo("p", xattr("user.onfifo", "no")),
		file("empty", "x", xattr("user.empty", "")),
	)
	_, mnt := mountImage(t, m)
	want := map[string][]overlay.Xattr{
		"ping":  {{Name: "security.capability", Value: capV2}},
		"ping3": {{Name: "security.capability", Value: capV3}},
		// The kernel serves a v3 capability whose root uid is 0 (as seen
		// from the initial namespace) as v2, as it does on any file system.
		"ping3root": {{Name: "security.capability", Value: capV2}},
		"bad":       {{Name: "user.ok", Value: "yes"}},
		"short":     nil,
		"f":         {{Name: "security.selinux", Value: "system_u:object_r:bin_t:s0"}, {Name: "user.bin", Value: "\x00\xff\x00"}, {Name: "user.mime", Value: "text/plain"}},
		"acl":       {{Name: "system.posix_acl_access", Value: aclAccess}},
		"badacl":    nil,
		"d":         {{Name: "user.dir", Value: "1"}},
		"l":         {{Name: "security.selinux", Value: "lnk"}},
		"p":         nil,
		"empty":     {{Name: "user.empty", Value: ""}},
	}
	for name, xs := range want {
		p := filepath.Join(mnt, name)
		var got []overlay.Xattr
		for _, n := range listXattrs(t, p) {
			v, err := getXattr(p, n)
			if err != nil {
				t.Errorf("%s: getxattr %s: %v", name, n, err)
				continue
			}
			got = append(got, overlay.Xattr{Name: n, Value: v})
		}
		slices.SortFunc(got, func(a, b overlay.Xattr) int { return strings.Compare(a.Name, b.Name) })
		if !slices.Equal(got, xs) {
			t.Errorf("%s: xattrs %q, want %q", name, got, xs)
		}
	}
	if _, err := getXattr(filepath.Join(mnt, "f"), "trusted.overlay.opaque"); !errors.Is(err, unix.ENODATA) {
		t.Errorf("getxattr of a hidden trusted.* name: %v, want ENODATA", err)
	}
	if _, err := getXattr(filepath.Join(mnt, "f"), "user.missing"); !errors.Is(err, unix.ENODATA) {
		t.Errorf("getxattr of a missing name: %v, want ENODATA", err)
	}
	small := make([]byte, 2)
	if _, err := unix.Lgetxattr(filepath.Join(mnt, "f"), "user.mime", small); !errors.Is(err, unix.ERANGE) {
		t.Errorf("getxattr into a short buffer: %v, want ERANGE", err)
	}
	if _, err := unix.Llistxattr(filepath.Join(mnt, "f"), small); !errors.Is(err, unix.ERANGE) {
		t.Errorf("listxattr into a short buffer: %v, want ERANGE", err)
	}
}

// TestXattrsMalformedLogged checks that a malformed capability is reported
// once at mount, with its path.
func TestXattrsMalformedLogged(t *testing.T) {
	var logs bytes.Buffer
	m := new(memImage).addLayer(file("usr/bin/bad", "ELF", xattr("security.capability", capV1)))
	mountTree(t, m.merge(t), m, Options{Logger: newTestLogger(&logs)})
	out := logs.String()
	if strings.Count(out, "leaving out extended attribute") != 1 || !strings.Contains(out, "/usr/bin/bad") ||
		!strings.Contains(out, "security.capability") {
		t.Errorf("log = %q, want one warning naming /usr/bin/bad and security.capability", out)
	}
}

// TestNoXattrs checks that an image without attributes answers
// EOPNOTSUPP, which mkfs.ext4 -d and getfattr take as "none".
func TestNoXattrs(t *testing.T) {
	_, mnt := mountImage(t, new(memImage).addLayer(file("f", "x")))
	_, err := unix.Llistxattr(filepath.Join(mnt, "f"), nil)
	if !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("llistxattr: %v, want EOPNOTSUPP", err)
	}
	_, err = unix.Lgetxattr(filepath.Join(mnt, "f"), "security.capability", nil)
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENODATA) {
		t.Errorf("lgetxattr: %v, want EOPNOTSUPP or ENODATA", err)
	}
}

func TestValidCapability(t *testing.T) {
	for _, c := range []struct {
		v  string
		ok bool
	}{
		{capV2, true}, {capV3, true}, {capV1, false}, {"", false},
		{capV2 + "x", false}, {capV3[:20], false}, {"\x00\x00\x00\x03" + capV2[4:], false},
	} {
		if got := validCapability(c.v); got != c.ok {
			t.Errorf("validCapability(%q) = %v, want %v", c.v, got, c.ok)
		}
	}
}
