package fusefs

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/overlay"
)

// fillImage has three layers. The top one decides top, link, d and
// everything under d; the middle one etc/mid; etc/base, d's link count
// (d/sub0 is a subdirectory) and the root need the bottom one.
func fillImage() *memImage {
	return new(memImage).addLayer(
		dir("etc"),
		file("etc/base", "from the bottom"),
		dir("d"),
		dir("d/sub0"),
	).addLayer(
		dir("etc"),
		file("etc/mid", "from the middle"),
	).addLayer(
		dir("d", perm(0o750), owner(7, 8)),
		file("d/f", "the top layer's file", xattr("user.k", "v"), xattr("trusted.t", "hidden")),
		hardlink("d/g", "d/f"),
		dir("d/sub"),
		symlink("link", "d/f"),
		file("top", "top"),
	)
}

// TestFillLookup follows one mount through every state: decided paths
// answer at once, others when the layers that decide them arrive.
func TestFillLookup(t *testing.T) {
	m := fillImage()
	tree := m.merge(t)
	src := newStepFiller(FillState{})
	srv, mnt, log := mountFilling(t, src, m, Options{Debug: true})
	p := func(s string) string { return filepath.Join(mnt, s) }

	// Nothing known: even the top layer's file waits.
	topCh := async(lstatErr(p("top")))
	waitLog(t, log, "path=/top", 1)
	pending(t, topCh, "lstat top")
	if n := srv.WaitingLookups(); n != 1 {
		t.Errorf("WaitingLookups() = %d while lstat top waits, want 1", n)
	}

	src.set(partial(t, m, 2))
	if err := await(t, topCh, "lstat top"); err != nil {
		t.Fatalf("lstat top: %v", err)
	}
	if n := srv.WaitingLookups(); n != 0 {
		t.Errorf("WaitingLookups() = %d once lstat top answered, want 0", n)
	}
	// Decided by the top layer: answered at once, never waiting.
	waits := strings.Count(log.String(), "waiting for more layers")
	for _, name := range []string{"top", "link", "d/f", "d/g"} {
		var st unix.Stat_t
		if err := unix.Lstat(p(name), &st); err != nil {
			t.Fatalf("lstat %s: %v", name, err)
		}
		checkStat(t, name, tree.Get(name), &st)
	}
	if b, err := os.ReadFile(p("d/f")); err != nil || string(b) != "the top layer's file" {
		t.Errorf("reading d/f while filling: %q, %v", b, err)
	}
	if target, err := os.Readlink(p("link")); err != nil || target != "d/f" {
		t.Errorf("readlink link while filling: %q, %v", target, err)
	}
	if names := listXattrs(t, p("d/f")); len(names) != 1 || names[0] != "user.k" {
		t.Errorf("listxattr d/f while filling: %q, want [user.k]", names)
	}
	if v, err := getXattr(p("d/f"), "user.k"); err != nil || v != "v" {
		t.Errorf("getxattr d/f user.k while filling: %q, %v", v, err)
	}
	if _, err := getXattr(p("d/f"), "trusted.t"); !errors.Is(err, unix.ENODATA) {
		t.Errorf("getxattr d/f trusted.t while filling: %v, want ENODATA", err)
	}
	if _, err := unix.Open(p("top"), unix.O_WRONLY, 0); !errors.Is(err, unix.EROFS) {
		t.Errorf("opening top for writing while filling: %v, want EROFS", err)
	}
	if n := strings.Count(log.String(), "waiting for more layers"); n != waits {
		t.Errorf("requests on decided files waited %d times:\n%s", n-waits, log.String())
	}
	s0 := srv.Stats()
	for _, name := range []string{"top", "link", "d/f"} {
		var st unix.Stat_t
		if err := unix.Lstat(p(name), &st); err != nil {
			t.Fatalf("lstat %s: %v", name, err)
		}
	}
	if _, err := os.Readlink(p("link")); err != nil {
		t.Fatal(err)
	}
	if s := srv.Stats().Sub(s0); s.Total() != 0 {
		t.Errorf("lstat and readlink again sent %v, want nothing (cached)", s)
	}

	// Undecided: etc (and so etc/mid) waits for the middle layer,
	// etc/base and a missing name for the tree.
	mid := async(lstatErr(p("etc/mid")))
	base := async(lstatErr(p("etc/base")))
	missing := async(lstatErr(p("missing")))
	waitLog(t, log, "path=/etc", 1)
	waitLog(t, log, "path=/missing", 1)
	src.set(partial(t, m, 1))
	if err := await(t, mid, "lstat etc/mid"); err != nil {
		t.Fatalf("lstat etc/mid: %v", err)
	}
	waitLog(t, log, "path=/etc/base", 1)
	waitLog(t, log, "path=/missing", 2) // woke, and waits again
	pending(t, base, "lstat etc/base")
	pending(t, missing, "lstat missing")

	src.set(FillState{Tree: tree})
	if err := await(t, base, "lstat etc/base"); err != nil {
		t.Errorf("lstat etc/base: %v", err)
	}
	if err := await(t, missing, "lstat missing"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("lstat missing: %v, want ENOENT", err)
	}
	if b, err := os.ReadFile(p("etc/base")); err != nil || string(b) != "from the bottom" {
		t.Errorf("reading etc/base: %q, %v", b, err)
	}
	if st := srv.Stats(); st.Lookup < 8 || st.Read < 2 {
		t.Errorf("stats %v: want the lookups and reads of both phases", st)
	}
	if !strings.Contains(log.String(), "LOOKUP") {
		t.Errorf("Options.Debug: the log has no LOOKUP request")
	}
}

// TestFillDirectories checks that the root and a decided directory
// answer stat at once, with link count 1 and their final other
// attributes, and the true count once the tree is complete; a decided
// directory's xattrs answer at once; listings, statfs and the root's
// xattrs (no known layer has its entry) wait for the tree across
// intermediate states.
func TestFillDirectories(t *testing.T) {
	m := fillImage()
	tree := m.merge(t)
	src := newStepFiller(partial(t, m, 2))
	srv, mnt, log := mountFilling(t, src, m, Options{})
	p := func(s string) string { return filepath.Join(mnt, s) }

	for _, c := range []struct{ path, node string }{{p("d"), "d"}, {mnt, ""}} {
		var st unix.Stat_t
		if err := unix.Lstat(c.path, &st); err != nil {
			t.Fatalf("lstat %q while filling: %v", c.node, err)
		}
		if st.Nlink != 1 {
			t.Errorf("lstat %q while filling: nlink %d, want 1", c.node, st.Nlink)
		}
		st.Nlink = uint64(tree.Get(c.node).Nlink())
		checkStat(t, c.node, tree.Get(c.node), &st)
	}
	var names []string
	listCh := async(func() (err error) { names, err = readdirnames(p("d/sub"), 4096); return err })
	var sfs unix.Statfs_t
	statfsCh := async(func() error { return unix.Statfs(mnt, &sfs) })
	if _, err := unix.Llistxattr(p("d/sub"), nil); err != nil { // decided: at once
		t.Errorf("llistxattr d/sub while filling: %v", err)
	}
	xattrCh := async(func() error { _, err := unix.Llistxattr(mnt, nil); return err }) // the root's entry is in the bottom layer
	waitLog(t, log, "path=/", 1)
	waitLog(t, log, "node=1", 1)                                   // statfs
	waitLog(t, log, "node="+strconv.FormatUint(fillBase+1, 10), 1) // opendir d/sub (d is fillBase)
	if n := srv.WaitingLookups(); n != 0 {
		t.Errorf("WaitingLookups() = %d while only requests that need every layer wait, want 0", n)
	}
	src.set(partial(t, m, 1))
	waitLog(t, log, "node=1", 2)
	checks := []struct {
		ch   <-chan error
		what string
	}{{listCh, "listing d/sub"}, {statfsCh, "statfs"}, {xattrCh, "llistxattr of the root"}}
	for _, c := range checks {
		pending(t, c.ch, c.what)
	}

	src.set(FillState{Tree: tree})
	for _, c := range checks {
		if err := await(t, c.ch, c.what); err != nil {
			t.Errorf("%s: %v", c.what, err)
		}
	}
	for _, c := range []struct{ path, node string }{{p("d"), "d"}, {mnt, ""}} {
		var st unix.Stat_t
		if err := unix.Lstat(c.path, &st); err != nil {
			t.Fatal(err)
		}
		checkStat(t, c.node, tree.Get(c.node), &st)
	}
	if len(names) != 0 {
		t.Errorf("d/sub lists %q, want nothing", names)
	}
	if sfs.Files != uint64(tree.Len()) {
		t.Errorf("statfs: %d files, want %d", sfs.Files, tree.Len())
	}
}

// TestFillRootAttributes: the root shows overlay.UnknownRoot's
// attributes until a known layer has the root's entry, then that entry's
// (link count 1 until the tree is complete).
func TestFillRootAttributes(t *testing.T) {
	m := new(memImage).addLayer(dir("etc"), file("etc/base", "b")).
		addLayer(dir(".", perm(0o700), owner(5, 6)), file("top", "t"))
	tree := m.merge(t)
	src := newStepFiller(FillState{})
	_, mnt, _ := mountFilling(t, src, m, Options{})
	var st unix.Stat_t
	if err := unix.Stat(mnt, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode != unix.S_IFDIR|0o755 || st.Uid != 0 || st.Nlink != 1 {
		t.Errorf("root before any layer: mode %o uid %d nlink %d, want 40755 0 1", st.Mode, st.Uid, st.Nlink)
	}
	src.set(partial(t, m, 1))
	var want unix.Stat_t // what the root shows once the top layer is known
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		if err := unix.Stat(mnt, &want); err != nil {
			t.Fatal(err)
		}
		if want.Mode&0o777 == 0o700 || time.Now().After(deadline) {
			break
		}
	}
	if want.Nlink != 1 {
		t.Errorf("root with its layer known: nlink %d, want 1", want.Nlink)
	}
	want.Nlink = uint64(tree.Root().Nlink())
	checkStat(t, "", tree.Root(), &want)
}

// TestFillThenComplete checks that a file looked up while filling and the
// same file listed from the complete tree look the same: attributes, d_ino
// and content, through a descriptor opened while filling too.
func TestFillThenComplete(t *testing.T) {
	m := fillImage()
	tree := m.merge(t)
	src := newStepFiller(partial(t, m, 2))
	srv, mnt, _ := mountFilling(t, src, m, Options{})
	p := func(s string) string { return filepath.Join(mnt, s) }

	before := map[string]unix.Stat_t{}
	for _, name := range []string{"d/f", "d/g", "link", "top"} {
		var st unix.Stat_t
		if err := unix.Lstat(p(name), &st); err != nil {
			t.Fatalf("lstat %s: %v", name, err)
		}
		before[name] = st
	}
	held, err := os.Open(p("d/f"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	src.set(FillState{Tree: tree})
	awaitComplete(t, mnt)
	inos, err := direntInos(p("d"))
	if err != nil {
		t.Fatal(err)
	}
	rootInos, err := direntInos(mnt)
	if err != nil {
		t.Fatal(err)
	}
	for name, old := range before {
		var st unix.Stat_t
		if err := unix.Lstat(p(name), &st); err != nil {
			t.Fatalf("lstat %s after completion: %v", name, err)
		}
		checkStat(t, name, tree.Get(name), &st)
		checkStat(t, name+" (looked up while filling)", tree.Get(name), &old)
		d := inos
		if !strings.HasPrefix(name, "d/") {
			d = rootInos
		}
		if got := d[filepath.Base(name)]; got != st.Ino {
			t.Errorf("%s: d_ino %d, st_ino %d", name, got, st.Ino)
		}
	}
	var fst unix.Stat_t
	if err := unix.Fstat(int(held.Fd()), &fst); err != nil {
		t.Fatal(err)
	}
	checkStat(t, "d/f (descriptor opened while filling)", tree.Get("d/f"), &fst)
	want := "the top layer's file"
	if b, err := os.ReadFile(p("d/f")); err != nil || string(b) != want {
		t.Errorf("reading d/f after completion: %q, %v", b, err)
	}
	s0 := srv.Stats()
	b := make([]byte, 100)
	if n, err := held.ReadAt(b, 4); err != nil && err != io.EOF || string(b[:n]) != want[4:] {
		t.Errorf("reading d/f through the descriptor opened while filling: %q, %v", b[:n], err)
	}
	if got := srv.Stats().Sub(s0).Read; got == 0 {
		t.Errorf("the read after completion was not counted")
	}
	if names := listXattrs(t, p("d/f")); len(names) != 1 || names[0] != "user.k" {
		t.Errorf("listxattr d/f after completion: %q, want [user.k]", names)
	}
}

// TestFillError checks that a failed fill answers undecided requests EIO,
// also those already waiting, while decided files keep working.
func TestFillError(t *testing.T) {
	m := fillImage()
	src := newStepFiller(partial(t, m, 2))
	_, mnt, log := mountFilling(t, src, m, Options{})
	p := func(s string) string { return filepath.Join(mnt, s) }

	waiting := async(lstatErr(p("etc/mid")))
	waitLog(t, log, "path=/etc", 1)
	src.set(FillState{Err: errors.New("layer 0: connection reset")})
	if err := await(t, waiting, "lstat etc/mid"); !errors.Is(err, unix.EIO) {
		t.Errorf("waiting lstat etc/mid: %v, want EIO", err)
	}
	if !strings.Contains(log.String(), "connection reset") {
		t.Errorf("the fill's error is not logged:\n%s", log.String())
	}
	start := time.Now()
	for _, name := range []string{"etc/base", "missing"} {
		var st unix.Stat_t
		if err := unix.Lstat(p(name), &st); !errors.Is(err, unix.EIO) {
			t.Errorf("lstat %q: %v, want EIO", name, err)
		}
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("EIO answers took %v", d)
	}
	if b, err := os.ReadFile(p("d/f")); err != nil || string(b) != "the top layer's file" {
		t.Errorf("reading d/f after the fill failed: %q, %v", b, err)
	}
	// Never looked up before: decided by the last Partial, which the
	// failed state (without one) keeps.
	var st unix.Stat_t
	if err := unix.Lstat(p("d/g"), &st); err != nil {
		t.Errorf("lstat d/g after the fill failed: %v", err)
	}
	if target, err := os.Readlink(p("link")); err != nil || target != "d/f" {
		t.Errorf("readlink link after the fill failed: %q, %v", target, err)
	}
}

// TestFillRetry: a failure the Filler retries fails the waiting requests
// with EIO; once it reports progress again, requests wait again and then
// answer.
func TestFillRetry(t *testing.T) {
	m := fillImage()
	src := newStepFiller(partial(t, m, 2))
	src.retry = true
	_, mnt, log := mountFilling(t, src, m, Options{})
	p := func(s string) string { return filepath.Join(mnt, s) }

	waiting := async(lstatErr(p("etc/mid")))
	waitLog(t, log, "path=/etc", 1)
	src.set(FillState{Err: errors.New("layer 1: connection reset")})
	if err := await(t, waiting, "lstat etc/mid"); !errors.Is(err, unix.EIO) {
		t.Fatalf("waiting lstat etc/mid: %v, want EIO", err)
	}
	const known = `msg="more layers known"`
	n := strings.Count(log.String(), known+"\n")
	src.set(FillState{}) // retrying: the previous Partial stays
	waitLog(t, log, known, n+1)
	waiting = async(lstatErr(p("etc/mid")))
	waitLog(t, log, "path=/etc", 2)
	pending(t, waiting, "lstat etc/mid after the retry started")
	src.set(partial(t, m, 1))
	if err := await(t, waiting, "lstat etc/mid"); err != nil {
		t.Errorf("lstat etc/mid once its layer is in: %v", err)
	}
}

// TestFillInterrupt kills a process whose lookup waits: the request is
// interrupted and answered, so the process dies and the mount unmounts.
func TestFillInterrupt(t *testing.T) {
	m := fillImage()
	src := newStepFiller(partial(t, m, 2))
	srv, mnt, log := mountFilling(t, src, m, Options{})
	cmd := exec.Command("stat", filepath.Join(mnt, "etc/mid"))
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitLog(t, log, "path=/etc", 1)
	s0 := srv.Stats()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := await(t, async(cmd.Wait), "killed stat"); err == nil {
		t.Fatalf("stat ran to completion, want it killed")
	}
	// The interrupted LOOKUP was answered: counted, and nothing waits.
	deadline := time.Now().Add(time.Minute)
	for srv.Stats().Sub(s0).Lookup == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the interrupted lookup was never answered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := srv.Unmount(); err != nil {
		t.Errorf("Unmount after the interrupt: %v", err)
	}
}

// TestFillStale mounts a Partial that decides a path the complete tree
// lacks (it never should): the mismatch is logged and requests on the
// path's node answer ESTALE.
func TestFillStale(t *testing.T) {
	m := fillImage()
	other := new(memImage).addLayer(file("ghost", "boo")).addLayer(file("x", ""))
	p, err := overlay.MergePartial(other.layers, 0)
	if err != nil {
		t.Fatal(err)
	}
	src := newStepFiller(FillState{Partial: p})
	_, mnt, log := mountFilling(t, src, other, Options{})
	ghost := filepath.Join(mnt, "ghost")
	held, err := os.Open(ghost)
	if err != nil {
		t.Fatalf("opening ghost while filling: %v", err)
	}
	defer held.Close()
	src.set(FillState{Tree: m.merge(t)})
	awaitComplete(t, mnt)
	if !strings.Contains(log.String(), "missing from the complete tree") {
		t.Errorf("the missing path is not logged:\n%s", log.String())
	}
	if _, err := held.Read(make([]byte, 10)); !errors.Is(err, unix.ESTALE) {
		t.Errorf("reading ghost after completion: %v, want ESTALE", err)
	}
}

// TestFillAllowOther: with AllowOther the kernel checks permissions
// itself (default_permissions), with the attributes of the root and of
// each directory on the path, which answer at once: a decided path does
// not wait. The mount is read from another process (no SelfAccess).
func TestFillAllowOther(t *testing.T) {
	m := fillImage()
	src := newStepFiller(partial(t, m, 2))
	_, mnt, log := mountFillingAs(t, src, m, Options{AllowOther: true})
	cmd := exec.Command("stat", filepath.Join(mnt, "d/f"))
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("stat d/f while filling: %v: %s", err, out)
	}
	if strings.Contains(log.String(), "waiting for more layers") {
		t.Errorf("stat d/f waited:\n%s", log.String())
	}
}

// TestFillFirstState: the state the Filler has when the mount starts
// answers the first requests, even before MountFilling follows it.
func TestFillFirstState(t *testing.T) {
	m := fillImage()
	src := newStepFiller(partial(t, m, 2))
	hold := make(chan struct{})
	defer func(orig func(func())) { startFollow = orig }(startFollow)
	startFollow = func(follow func()) { go func() { <-hold; follow() }() }
	_, mnt, log := mountFilling(t, src, m, Options{})
	t.Cleanup(func() { close(hold) }) // before the unmount
	ch := async(lstatErr(filepath.Join(mnt, "d/f")))
	select {
	case err := <-ch:
		if err != nil {
			t.Fatalf("lstat d/f: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("lstat d/f, decided by the first state, waits for follow to start:\n%s", log.String())
	}
}

// TestFillPrefetch checks that Options.Prefetch pushes once the tree is
// complete.
func TestFillPrefetch(t *testing.T) {
	const files = 20
	m, _ := prefetchImage(files)
	src := newStepFiller(FillState{})
	srv, mnt, _ := mountFilling(t, src, m, Options{Prefetch: true})
	src.set(FillState{Tree: m.merge(t)})
	if _, err := os.ReadDir(filepath.Join(mnt, "d")); err != nil {
		t.Fatal(err)
	}
	waitPrefetched(t, srv, files)
}
