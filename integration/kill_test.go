package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/ocifs/ocifs/internal/faultproxy"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"golang.org/x/sys/unix"
)

// SIGKILL of `ocifs pull` at chosen moments (while the manifest is being
// fetched, mid-blob, while a layer index or index.json is being written)
// and at spread-out moments of a whole pull; each time a rerun must give
// the same store as an uninterrupted pull: `cache verify` clean and the
// layer indexes byte for byte those of a pull that was never killed.

// killImage is a faultImage (a 1 MiB gzip layer to stall in the middle
// of) with a zstd layer of 20,000 entries (its index takes a while to
// write) and a small uncompressed one.
func killImage(t *testing.T) *faultImage {
	var es []ti.Entry
	for d := range 20 {
		es = append(es, ti.Dir(fmt.Sprintf("d%02d", d)))
		for i := range 1000 {
			es = append(es, ti.File(fmt.Sprintf("d%02d/file-with-a-longish-name-%04d", d, i), "x"))
		}
	}
	return newFaultImage(t, "kill", ti.Layer(es...), ti.Layer(ti.File("etc/motd", "plain\n")))
}

// indexFiles reads a cache's layer index files by name.
func indexFiles(t *testing.T, cache string) map[string]string {
	t.Helper()
	dir := filepath.Join(cache, "ocifs", "index", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

// killMoment arms a way to notice the moment and returns a channel that
// fires at it.
type killMoment func(t *testing.T, f *faultImage, tmp string) <-chan string

func TestKillPullThenRerun(t *testing.T) {
	f := killImage(t)
	refCache := filepath.Join(t.TempDir(), "reference")
	mustOcifs(t, []string{"OCIFS_CACHE_DIR=" + refCache}, "pull", f.ref)
	want := indexFiles(t, refCache)
	start := time.Now() // timed on a second pull: the first built the binary
	mustOcifs(t, []string{"OCIFS_CACHE_DIR=" + filepath.Join(t.TempDir(), "timing")}, "pull", f.ref)
	full := time.Since(start)
	if len(want) != 3 {
		t.Fatalf("reference pull made %d indexes", len(want))
	}
	stallOn := func(path string, after int64) killMoment {
		return func(t *testing.T, f *faultImage, _ string) <-chan string {
			ch := make(chan string, 1)
			f.proxy.Add(faultproxy.Rule{Path: path, Fault: faultproxy.Stall, After: after, Times: 1, Signal: ch})
			return ch
		}
	}
	created := func(pattern string) killMoment {
		re := regexp.MustCompile(pattern)
		return func(t *testing.T, _ *faultImage, tmp string) <-chan string {
			return watchCreate(t, tmp, re.MatchString)
		}
	}
	after := func(d time.Duration) killMoment {
		return func(*testing.T, *faultImage, string) <-chan string {
			ch := make(chan string, 1)
			time.AfterFunc(d, func() { ch <- d.String() })
			return ch
		}
	}
	moments := map[string]killMoment{
		"manifest":        stallOn("/manifests/", 0),
		"mid-blob":        stallOn(f.big.String(), f.size/2),
		"unpacked copy":   created(`^unpacked-[0-9a-f]{64}\.`),
		"index write":     created(`^[0-9a-f]{64}\.`),
		"index.json save": created(`^index\.json\.`),
	}
	for _, pc := range []int{20, 50, 80} {
		moments[fmt.Sprintf("at %d%% of a pull", pc)] = after(full * time.Duration(pc) / 100)
	}
	for name, moment := range moments {
		t.Run(name, func(t *testing.T) {
			tmp := filepath.Join(cacheDir(t), "ocifs", "tmp")
			if err := os.MkdirAll(tmp, 0o755); err != nil {
				t.Fatal(err)
			}
			f.proxy.Reset()
			fired := moment(t, f, tmp)
			what, code := killPullAt(t, f.ref, fired)
			left, _ := os.ReadDir(tmp)
			t.Logf("killed at %s (exit %d), %d temp files left", what, code, len(left))
			f.proxy.Reset()
			checkBlobsVerify(t)
			mustOcifs(t, nil, "pull", f.ref)
			mustOcifs(t, nil, "cache", "verify")
			got := indexFiles(t, cacheDir(t))
			for k, v := range want {
				if got[k] != v {
					t.Errorf("index %s differs from the uninterrupted pull's", k)
				}
			}
			if ls := cacheLs(t); len(ls) != 1 || ls[0].Problem != "" {
				t.Errorf("cache ls: %+v", ls)
			}
		})
	}
}

// killPullAt starts `ocifs pull ref` and SIGKILLs it when fired fires; it
// returns what fired ("finished" if the pull ended first) and the exit
// code.
func killPullAt(t *testing.T, ref string, fired <-chan string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout())
	defer cancel()
	cmd := ocifsCommand(ctx, t, nil, "pull", ref)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	what := "finished"
	select {
	case what = <-fired:
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	case <-done:
	case <-time.After(time.Minute):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		t.Fatal("the moment never came")
	}
	return what, cmd.ProcessState.ExitCode()
}

// checkBlobsVerify checks, right after a kill, that every file under a
// final name is whole: `cache verify` may only find images incomplete,
// never a bad blob, index or unpacked copy.
func checkBlobsVerify(t *testing.T) {
	t.Helper()
	stdout, stderr, code := runOcifs(t, nil, "cache", "verify")
	if code == 0 {
		return
	}
	for _, line := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(line, "bad ") && !strings.HasPrefix(line, "bad missing ") {
			t.Errorf("after SIGKILL, cache verify found: %s\n(stderr %s)", line, stderr)
		}
	}
}

// watchCreate reports (once) the name of the first file created in dir
// for which match is true. It uses inotify, so the kill that follows lands
// within a few hundred microseconds of the creat call.
func watchCreate(t *testing.T, dir string, match func(string) bool) <-chan string {
	return watchEvents(t, dir, unix.IN_CREATE, match)
}

// readEvents polls the inotify fd until fn returns true or stop closes.
func readEvents(fd int, stop <-chan struct{}, fn func(name string) bool) {
	buf := make([]byte, 64<<10)
	for {
		select {
		case <-stop:
			return
		default:
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if n, _ := unix.Poll(pfd, 20); n <= 0 {
			continue
		}
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			continue
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if fn(string(bytes.TrimRight(name, "\x00"))) {
				return
			}
		}
	}
}
