package tarindex

import (
	"archive/tar"
	"bytes"
	"testing"
	"time"
)

// A tiny fixture language for tar streams:
// tarOf(t, file("a", "x"), dir("d"), whiteout("b")).

type tarItem struct {
	hdr  tar.Header
	body string
}

type tarOpt func(*tar.Header)

var fixtureTime = time.Unix(1700000000, 123456789)

func item(typ byte, name string, opts []tarOpt) tarItem {
	h := tar.Header{Typeflag: typ, Name: name, Mode: 0o644, ModTime: fixtureTime, Format: tar.FormatPAX}
	for _, o := range opts {
		o(&h)
	}
	return tarItem{hdr: h}
}

func file(name, body string, opts ...tarOpt) tarItem {
	it := item(tar.TypeReg, name, opts)
	it.body, it.hdr.Size = body, int64(len(body))
	return it
}

func dir(name string, opts ...tarOpt) tarItem {
	it := item(tar.TypeDir, name, opts)
	it.hdr.Mode = 0o755
	for _, o := range opts {
		o(&it.hdr)
	}
	return it
}

func symlink(name, target string, opts ...tarOpt) tarItem {
	it := item(tar.TypeSymlink, name, opts)
	it.hdr.Linkname = target
	return it
}

func hardlink(name, target string, opts ...tarOpt) tarItem {
	it := item(tar.TypeLink, name, opts)
	it.hdr.Linkname = target
	return it
}

func device(typ byte, name string, major, minor int64, opts ...tarOpt) tarItem {
	it := item(typ, name, opts)
	it.hdr.Devmajor, it.hdr.Devminor = major, minor
	return it
}

func fifo(name string, opts ...tarOpt) tarItem { return item(tar.TypeFifo, name, opts) }

func whiteout(name string) tarItem { return file(name, "") }

func withMode(m int64) tarOpt { return func(h *tar.Header) { h.Mode = m } }

func withOwner(uid, gid int) tarOpt { return func(h *tar.Header) { h.Uid, h.Gid = uid, gid } }

func withMTime(t time.Time) tarOpt { return func(h *tar.Header) { h.ModTime = t } }

func withPAX(k, v string) tarOpt {
	return func(h *tar.Header) {
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords[k] = v
	}
}

func withXattr(name, value string) tarOpt { return withPAX(paxSchilyXattr+name, value) }

// tarOf writes the items as one tar stream.
func tarOf(t testing.TB, items ...tarItem) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, it := range items {
		h := it.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("writing tar header %q: %v", h.Name, err)
		}
		if _, err := tw.Write([]byte(it.body)); err != nil {
			t.Fatalf("writing tar body %q: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
