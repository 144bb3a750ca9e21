package cache

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Child-process mode: the test binary pulls PULL_REF into PULL_DIR and
// exits, so that tests can run real concurrent processes and kill them.
func TestMain(m *testing.M) {
	if ref := os.Getenv("OCIFS_TEST_PULL_REF"); ref != "" {
		s, err := Open(os.Getenv("OCIFS_TEST_PULL_DIR"), Options{})
		if err == nil {
			var img *Image
			img, err = s.Pull(context.Background(), ref, PullOptions{})
			if err == nil {
				img.Close()
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func pullCommand(dir, ref string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "OCIFS_TEST_PULL_REF="+ref, "OCIFS_TEST_PULL_DIR="+dir)
	return cmd
}

func TestConcurrentPullsInProcess(t *testing.T) {
	host, _ := startRegistry(t)
	img, layers := threeLayers(t)
	ref := host + "/test/conc:v1"
	push(t, ref, img)
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			s, err := Open(dir, Options{})
			if err == nil {
				var got *Image
				got, err = s.Pull(context.Background(), ref, PullOptions{Jobs: 2})
				if err == nil {
					got.Close()
				}
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("pull %d: %v", i, err)
		}
	}
	s := openStore(t, dir)
	got, err := s.Get(context.Background(), ref, PullOptions{})
	must(t, err)
	defer got.Close()
	checkImageAgainst(t, got, layers)
	checkNoTemps(t, s)
	if im, _ := s.readIndex(); len(im.Manifests) != 1 {
		t.Errorf("index.json has %d entries, want 1", len(im.Manifests))
	}
}

func TestConcurrentPullProcesses(t *testing.T) {
	host, reg := startFaultyRegistry(t)
	img, layers := threeLayers(t)
	ref := host + "/test/procs:v1"
	push(t, ref, img)
	// Slow every blob down so that the processes overlap.
	reg.setFault(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		time.Sleep(100 * time.Millisecond)
		return false
	})
	dir := t.TempDir()
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for range 3 {
		cmd := pullCommand(dir, ref)
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		must(t, cmd.Start())
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("process %d: %v\n%s", i, err, outs[i])
		}
	}
	s := openStore(t, dir)
	got, err := s.Get(context.Background(), ref, PullOptions{})
	must(t, err)
	defer got.Close()
	checkImageAgainst(t, got, layers)
	checkNoTemps(t, s)
	if rep, err := s.Verify(context.Background(), VerifyOptions{}); err != nil || len(rep.Problems) > 0 {
		t.Errorf("Verify: %v %+v", err, rep)
	}
}

// TestKilledPullThenRerun kills a pulling process (SIGKILL) while it is
// in the middle of a blob, then pulls again.
func TestKilledPullThenRerun(t *testing.T) {
	host, reg := startFaultyRegistry(t)
	img, layers := threeLayers(t)
	ref := host + "/test/killed:v1"
	push(t, ref, img)
	stalled := make(chan struct{}, 8)
	release := make(chan struct{})
	target := layers[0].digest().String()
	reg.setFault(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		if !strings.HasSuffix(r.URL.Path, target) {
			return false
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		stalled <- struct{}{}
		<-release
		return true
	})
	defer close(release)
	dir := t.TempDir()
	cmd := pullCommand(dir, ref)
	must(t, cmd.Start())
	select {
	case <-stalled:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the child never reached the stalled blob")
	}
	// Kill it mid-blob: once it has written some of what it received.
	var temps []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		temps = nonEmptyFiles(filepath.Join(dir, tmpDir))
		if len(temps) > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the child never wrote a temp file")
		}
	}
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	cmd.Wait()
	s := openStore(t, dir)
	if exists(s.blobPath(layers[0].digest())) {
		t.Fatal("partial blob under its final name after SIGKILL")
	}
	temps, _ = filepath.Glob(filepath.Join(dir, tmpDir, "*"))
	old := time.Now().Add(-2 * staleTempAge)
	for _, p := range temps {
		os.Chtimes(p, old, old)
	}
	reg.setFault(nil)
	got, err := s.Pull(context.Background(), ref, PullOptions{})
	must(t, err)
	defer got.Close()
	checkImageAgainst(t, got, layers)
	checkNoTemps(t, s) // the rerun cleaned the dead process's temp files
}

// nonEmptyFiles lists the non-empty files in dir.
func nonEmptyFiles(dir string) []string {
	var out []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}
