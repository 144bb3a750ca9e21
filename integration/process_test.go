package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Helpers for tests that kill processes and wait for them: reading
// /proc, bounding calls that could hang on a dead mount.

// procStat returns a process's state letter (R, S, D, Z, ...) and parent
// pid; ok is false once the process is gone.
func procStat(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces and parentheses
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0][0], ppid, true
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	st, _, ok := procStat(pid)
	return ok && st != 'Z'
}

// waitExit waits until pid has exited. An exited process whose parent is
// still alive and has not reaped it is a zombie the parent leaks: an
// error. One reparented to init is init's to reap (some container inits
// never do).
func waitExit(pid int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for alive(pid) {
		if time.Now().After(deadline) {
			st, _, _ := procStat(pid)
			return fmt.Errorf("process %d still running after %v (state %c)", pid, d, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	st, ppid, ok := procStat(pid)
	if ok && st == 'Z' && ppid != 1 && alive(ppid) {
		time.Sleep(time.Second) // a parent may be about to wait
		if st, _, ok := procStat(pid); ok && st == 'Z' {
			return fmt.Errorf("process %d is a zombie its parent %d does not reap", pid, ppid)
		}
	}
	return nil
}

// killAndWait kills pid with SIGKILL and waits until it has exited. Only
// then has it closed its descriptors, /dev/fuse among them, which is what
// aborts a FUSE connection: until then a request to its mount is queued.
func killAndWait(t *testing.T, pid int) {
	t.Helper()
	syscall.Kill(pid, syscall.SIGKILL)
	if err := waitExit(pid, reapTimeout); err != nil {
		t.Fatal(err)
	}
}

// within runs fn and returns its error, failing the test if fn takes
// longer than d: a system call hanging on a dead mount. The goroutine is
// then left behind, blocked.
func within(t *testing.T, d time.Duration, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("%s hangs (more than %v)", what, d)
	}
	return nil
}

// childPids returns pid's children by pid, with their command lines
// (arguments joined by spaces).
func childPids(pid int) map[int]string {
	out := map[int]string{}
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			c, _ := strconv.Atoi(s)
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c))
			out[c] = strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " ")
		}
	}
	return out
}

// stuckThreads returns the kernel stacks of pid's threads that wait for a
// FUSE answer (request_wait_answer), one line each.
func stuckThreads(pid int) []string {
	var out []string
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	for _, task := range tasks {
		stack, _ := os.ReadFile(filepath.Join(task, "stack"))
		if strings.Contains(string(stack), "request_wait_answer") {
			out = append(out, filepath.Base(task)+": "+strings.Join(strings.Fields(string(stack)), " "))
		}
	}
	return out
}

// threadStacks returns the state and kernel stack of every thread of pid.
func threadStacks(pid int) []string {
	var out []string
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	for _, task := range tasks {
		stat, _ := os.ReadFile(filepath.Join(task, "stat"))
		stack, _ := os.ReadFile(filepath.Join(task, "stack"))
		out = append(out, fmt.Sprintf("%s: %s: %s", filepath.Base(task), strings.TrimSpace(string(stat)), strings.Join(strings.Fields(string(stack)), " ")))
	}
	return out
}

// fusectlDir is where the fusectl file system lists FUSE connections.
const fusectlDir = "/sys/fs/fuse/connections"

// abortFUSE aborts the FUSE connection of the mount at dir through
// fusectl (mounting fusectl first if needed; root only), as
// `echo 1 > /sys/fs/fuse/connections/N/abort` does: every request waiting
// on it fails, so a process stuck on its own dead mount can exit.
func abortFUSE(dir string) error {
	dev, err := mountDev(dir)
	if err != nil {
		return err
	}
	ctl := filepath.Join(fusectlDir, dev)
	if _, err := os.Stat(ctl); err != nil {
		if err := unix.Mount("fusectl", fusectlDir, "fusectl", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mounting fusectl: %w", err)
		}
	}
	return os.WriteFile(filepath.Join(ctl, "abort"), []byte("1"), 0)
}

// mountDev returns the minor device number of the mount at dir, which
// names its FUSE connection.
func mountDev(dir string) (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMountinfo(f[4]) == dir {
			_, minor, _ := strings.Cut(f[2], ":")
			return minor, nil
		}
	}
	return "", fmt.Errorf("%s is not mounted", dir)
}

// killable is an ocifs process to be SIGKILLed; kids are its children
// (command lines by pid) seen right before the kill.
type killable struct {
	cmd     *exec.Cmd
	started atomic.Int64 // the pid, once started
	done    chan error
	code    int
	kids    map[int]string
}

// newKillable prepares ocifs with env and args (as ocifsCommand); start
// starts it.
func newKillable(t *testing.T, env []string, args ...string) *killable {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout())
	t.Cleanup(cancel)
	return &killable{cmd: ocifsCommand(ctx, t, env, args...), done: make(chan error, 1)}
}

func (k *killable) start(t *testing.T) {
	t.Helper()
	if err := k.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	k.started.Store(int64(k.cmd.Process.Pid))
	go func() { k.done <- k.cmd.Wait() }()
}

// pid is the process's pid, or 0 before it started.
func (k *killable) pid() int { return int(k.started.Load()) }

// reapTimeout bounds how long a SIGKILLed process may take to be gone.
const reapTimeout = 10 * time.Second

// killAt SIGKILLs the process (that one, not its group, as `kill -9 PID`
// does) when fired fires, and waits until it is gone; it returns what
// fired ("finished" if the process ended first). A process that serves
// a FUSE mount and is itself waiting for an answer from that mount cannot
// exit: then the test fails, and the connections of the mounts that
// mounts lists are aborted (fusectl) so that it can.
func (k *killable) killAt(t *testing.T, fired <-chan string, mounts func() []string) string {
	t.Helper()
	what := "finished"
	select {
	case what = <-fired:
		k.kids = childPids(k.pid())
		syscall.Kill(k.pid(), syscall.SIGKILL)
		k.reap(t, mounts)
	case <-k.done:
	case <-time.After(time.Minute):
		syscall.Kill(-k.pid(), syscall.SIGKILL)
		k.reap(t, mounts)
		t.Fatal("the moment never came")
	}
	k.code = k.cmd.ProcessState.ExitCode()
	return what
}

func (k *killable) reap(t *testing.T, mounts func() []string) {
	t.Helper()
	select {
	case <-k.done:
		return
	case <-time.After(reapTimeout):
	}
	stuck := stuckThreads(k.pid())
	report := t.Errorf
	for pid, cmd := range k.kids {
		if n := len(stuckThreads(pid)); n > 0 {
			stuck = append(stuck, fmt.Sprintf("and its child %s (pid %d) waits too", strings.Fields(cmd + " ?")[0], pid))
		}
	}
	if len(stuck) == 0 { // stuck elsewhere: show every thread
		stuck = threadStacks(k.pid())
	}
	report("SIGKILLed ocifs (pid %d) is still there after %v; %d threads wait for an answer from its own mount:\n%s",
		k.pid(), reapTimeout, len(stuckThreads(k.pid())), strings.Join(stuck, "\n"))
	var mnts []string
	if mounts != nil {
		mnts = mounts()
	}
	for _, m := range mnts {
		if err := abortFUSE(m); err != nil {
			t.Logf("aborting the FUSE connection of %s: %v", m, err)
		}
	}
	select {
	case <-k.done:
		t.Log("it exited once its mount's FUSE connection was aborted")
	case <-time.After(reapTimeout):
		t.Fatalf("SIGKILLed ocifs (pid %d) never exits", k.pid())
	}
}

// waitChildren checks that the children of the killed process end by
// themselves within childExitTimeout.
func (k *killable) waitChildren(t *testing.T) {
	t.Helper()
	for pid, name := range k.kids {
		start := time.Now()
		if err := waitExit(pid, childExitTimeout); err != nil {
			t.Errorf("%s (pid %d) outlives the killed ocifs: %v", strings.Fields(name + " ?")[0], pid, err)
			syscall.Kill(pid, syscall.SIGKILL)
			continue
		}
		t.Logf("%s (pid %d) ended %v after the kill", strings.Fields(name + " ?")[0], pid, time.Since(start).Round(time.Millisecond))
	}
}

// knownBug skips the test (with why) unless OCIFS_TEST_KNOWN_BUGS=1:
// for tests that show a bug not fixed yet, so that CI stays green
// meanwhile and the fix can be checked by setting the variable.
func knownBug(t *testing.T, why string) {
	t.Helper()
	if !knownBugs() {
		t.Skip("known bug (OCIFS_TEST_KNOWN_BUGS=1 runs it): " + why)
	}
}

func knownBugs() bool { return os.Getenv("OCIFS_TEST_KNOWN_BUGS") == "1" }

// A SIGKILLed ocifs that serves a mount used to be able to hang for good
// (TestKillServerWhileMounting, TestKillBuildWhileWarming): when a
// thread of it waited for its own mount's answer, the kernel never
// aborted the connection. The serving process no longer touches its own
// mount (fusefs doc, Hazards); reap fails the test if one ever hangs again.
