package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/ocifs/ocifs/cache"
	"github.com/ocifs/ocifs/fusefs"
	"github.com/ocifs/ocifs/overlay"
)

// The background mount server is this binary re-executed as the hidden
// command below, detached in a new session with its working directory at
// "/". It reports on the pipe it inherits as fd 3: "ready", or three
// lines "error CODE", the message and the hint, which the parent prints
// and exits with. Until then it shares the parent's stderr (warnings show);
// once ready it lets go of the terminal and serves until DIR is unmounted
// or it gets SIGTERM/SIGINT/SIGHUP (then it unmounts).
const (
	mountServerCommand = "__mount-server"
	readyFD            = 3
)

func mountServerCmd() *cli.Command {
	cmd := mountCommand()
	cmd.Name = mountServerCommand
	cmd.Hidden = true
	cmd.Usage = "serve a mount in the background (started by 'ocifs mount')"
	cmd.Action = runMountServer
	cmd.Flags = append(cmd.Flags, &cli.StringFlag{Name: pinnedFlag, Hidden: true, Usage: "the manifest digest ocifs mount resolved REF to"})
	return cmd
}

// pinnedFlag hands the server mountRequest.Pinned.
const pinnedFlag = "pinned"

// startMountServer starts the background server and waits for its report.
func startMountServer(ctx context.Context, g *globals, req *mountRequest) (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("finding the ocifs binary: %w", err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("starting the mount server: %w", err)
	}
	defer pr.Close()
	cmd := exec.Command(self, mountServerArgs(g, req)...)
	cmd.Dir = "/"
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{pw} // fd 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return 0, fmt.Errorf("starting the mount server: %w", err)
	}
	report := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(pr, 64<<10))
		report <- string(b)
	}()
	select {
	case <-ctx.Done():
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		return 0, ctx.Err()
	case msg := <-report:
		pid := cmd.Process.Pid // before serverOutcome releases the process
		return pid, serverOutcome(cmd, msg, req.Dir)
	}
}

// serverOutcome turns the server's report into this process's result.
func serverOutcome(cmd *exec.Cmd, msg, dir string) error {
	if strings.TrimSpace(msg) == "ready" {
		cmd.Process.Release()
		return checkAnswers(dir)
	}
	waitErr := cmd.Wait()
	lines := strings.SplitN(msg, "\n", 4)
	if code, ok := strings.CutPrefix(lines[0], "error "); ok && len(lines) >= 3 {
		n, err := strconv.Atoi(code)
		if err == nil {
			return &cliError{code: n, hint: lines[2], err: errors.New(lines[1])}
		}
	}
	return fmt.Errorf("the mount server ended before mounting: %v", waitErr)
}

// checkAnswers stats the new mount from this process (the server never
// touches its own mount), so that ocifs mount returns once it answers.
func checkAnswers(dir string) error {
	done := make(chan error, 1)
	go func() {
		_, err := os.Lstat(dir)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("the new mount at %s does not answer: %w", dir, err)
		}
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("the new mount at %s does not answer after 30s", dir)
	}
}

// writeFailure sends an error to the parent as "error CODE", the one-line
// message and the hint.
func writeFailure(w io.Writer, err error) int {
	code, hint := classify(err)
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	fmt.Fprintf(w, "error %d\n%s\n%s\n", code, msg, strings.ReplaceAll(hint, "\n", " "))
	return code
}

func mountServerArgs(g *globals, req *mountRequest) []string {
	args := append([]string{mountServerCommand, "--cache-dir", g.CacheDir}, g.storeArgs()...)
	if g.Platform != "" {
		args = append(args, "--platform", g.Platform)
	}
	if g.Insecure {
		args = append(args, "--insecure")
	}
	if g.Debug {
		args = append(args, "--debug")
	}
	if req.AllowOther {
		args = append(args, "--allow-other")
	}
	if req.Prefetch {
		args = append(args, "--prefetch")
	}
	args = append(args, req.Lazy.args()...)
	if req.Layers > 0 {
		args = append(args, "--layers", strconv.Itoa(req.Layers))
	}
	if req.Layer >= 0 {
		args = append(args, "--layer", strconv.Itoa(req.Layer))
	}
	if req.Pinned != (v1.Hash{}) {
		args = append(args, "--"+pinnedFlag, req.Pinned.String())
	}
	return append(args, "--", req.Ref, req.Dir)
}

// runMountServer is the background server's main.
func runMountServer(c *cli.Context) error {
	ready := os.NewFile(readyFD, "ready")
	served := false
	err := func() error {
		req, err := parseMountRequest(c)
		if err != nil {
			return err
		}
		g, err := getGlobals(c)
		if err != nil {
			return err
		}
		quiet := &switchWriter{w: c.App.ErrWriter}
		g.Log = slog.New(slog.NewTextHandler(quiet, &slog.HandlerOptions{Level: logLevel(g)}))
		m, err := openMount(c.Context, g, req)
		if err != nil {
			return err
		}
		defer m.close()
		_, err = fmt.Fprintln(ready, "ready")
		ready.Close()
		if err != nil { // ocifs mount is gone: nobody knows of this mount
			return fmt.Errorf("reporting to ocifs mount: %w", err)
		}
		served = true
		// Let go of ocifs mount's stderr first: whoever waits for ocifs
		// mount reads that pipe to its end.
		quiet.set(openServerLog(g.CacheDir, req.Dir))
		detach()
		releaseMergeMemory()
		return m.serveUntil(c.Context, g)
	}()
	if err != nil && !served {
		if _, serr := ready.Stat(); serr == nil { // started by ocifs mount
			os.Exit(writeFailure(ready, err))
		}
	}
	return err
}

// releaseMergeMemory hands the memory the index load and merge used back
// to the system: the server lives on with the tree only, and its requests
// make little garbage, so a tighter GC target keeps the heap near it.
func releaseMergeMemory() {
	debug.FreeOSMemory()
	debug.SetGCPercent(50)
}

func logLevel(g *globals) slog.Level {
	if g.Debug {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

// detach points stdin, stdout and stderr at /dev/null, letting go of the
// terminal the server was started from.
func detach() {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer null.Close()
	for fd := 0; fd <= 2; fd++ {
		unix.Dup3(int(null.Fd()), fd, 0)
	}
}

// switchWriter is an io.Writer whose target can change once serving.
type switchWriter struct {
	mu sync.Mutex // guards w
	w  io.Writer
}

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *switchWriter) set(w io.Writer) {
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}

// openedMount is a mounted image: the server and what it reads from
// (img, or while it fills, fill).
type openedMount struct {
	img  *cache.Image
	fill *fillImage
	srv  *fusefs.Server
}

// openMount gets the image from the cache (pulling if needed), builds the
// requested tree and mounts it. A --lazy mount of the whole image is
// served while its layers download (openFillingMount).
func openMount(ctx context.Context, g *globals, req *mountRequest) (*openedMount, error) {
	store, err := openStore(g)
	if err != nil {
		return nil, err
	}
	po, err := pullOptions(g, nil)
	if err != nil {
		return nil, err
	}
	po.Pinned = req.Pinned
	if req.fills() {
		return openFillingMount(ctx, g, req, store, po)
	}
	img, err := req.Lazy.get(ctx, store, req.Ref, po)
	if err != nil {
		return nil, err
	}
	return mountImage(ctx, g, req, img)
}

// mountImage mounts the requested tree of img; it closes img on failure.
func mountImage(ctx context.Context, g *globals, req *mountRequest, img *cache.Image) (*openedMount, error) {
	tree, err := mountTree(ctx, img, req)
	if err != nil {
		img.Close()
		return nil, err
	}
	srv, err := fusefs.Mount(req.Dir, tree, img, mountOptions(g, req, img.Ref))
	if err != nil {
		img.Close()
		return nil, mountFailure(req, err)
	}
	if req.Lazy.Background && img.Lazy() {
		go fetchInBackground(ctx, g.Log, img)
	}
	return &openedMount{img: img, srv: srv}, nil
}

func mountOptions(g *globals, req *mountRequest, ref string) fusefs.Options {
	return fusefs.Options{
		AllowOther: req.AllowOther, Debug: g.Debug, Logger: g.Log, FsName: "ocifs:" + ref,
		Prefetch: req.Prefetch,
	}
}

// mountTree returns the merged tree, the merge of the first --layers, or
// --layer's raw view.
func mountTree(ctx context.Context, img *cache.Image, req *mountRequest) (*overlay.Tree, error) {
	if req.Layer < 0 {
		return mergeImage(ctx, img, req.Layers)
	}
	if err := checkLayerFlags(img, req); err != nil {
		return nil, err
	}
	layers, err := img.Indexes(ctx)
	if err != nil {
		return nil, err
	}
	tree, err := overlay.Raw(layers[req.Layer], req.Layer)
	if err != nil {
		return nil, layerError(img, err)
	}
	return tree, nil
}

// serveUntil serves until DIR is unmounted from outside, or until a
// signal; then it unmounts (lazily if busy, since the server is leaving).
func (m *openedMount) serveUntil(ctx context.Context, g *globals) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	go func() { m.srv.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	case <-sigs:
	}
	err := m.srv.Unmount()
	if errors.Is(err, fusefs.ErrBusy) {
		g.Log.Warn("mount is busy; detaching it lazily", "dir", m.srv.Dir())
		if lerr := fusefs.UnmountLazy(m.srv.Dir()); lerr == nil {
			return nil
		}
	}
	return err
}

func (m *openedMount) close() {
	m.srv.Unmount()
	if m.fill != nil {
		m.fill.close()
	}
	if m.img != nil {
		m.img.Close()
	}
}
