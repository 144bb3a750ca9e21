package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// baseEnv is the whole environment of every child: nothing inherited, so
// no E2FSPROGS_*/MKE2FS_* variable of the caller changes the output, and
// the C locale, so mke2fs's scandir(alphasort) orders names bytewise, as
// the tree does.
func baseEnv() []string {
	return []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"LC_ALL=C",
		"LANG=C",
		"TZ=UTC",
		"E2FSPROGS_LIBMAGIC_SUPPRESS=1",
		"E2FSPROGS_SKIP_PROGRESS=1",
	}
}

// runner runs e2fsprogs tools with a fixed environment.
type runner struct {
	env []string
	log *slog.Logger
}

// output is what a finished child printed and how it exited.
type output struct {
	stdout, stderr string
	code           int // exit code; -1 when killed by a signal
}

// run runs path with args and waits for it. A non-zero exit is not an
// error here (e2fsck's exit codes carry meaning); failing to start, or
// being killed because ctx ended, is.
//
// The child starts in "/", with stdin on /dev/null and no descriptor but
// its stdout and stderr pipes: it must hold nothing on a FUSE mount that
// this very process serves, or unmounting could block on it.
func (r *runner) run(ctx context.Context, path string, args ...string) (output, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = "/"
	cmd.Env = r.env
	cmd.Stdin = nil
	cmd.ExtraFiles = nil
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	out := output{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
	r.log.Debug("ran tool", "cmd", filepath.Base(path)+" "+strings.Join(args, " "),
		"code", out.code, "elapsed", time.Since(start).Round(time.Millisecond),
		"stderr", summarize(out.stderr, 10))
	if ctx.Err() != nil {
		return out, ctx.Err()
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return out, fmt.Errorf("running %s: %w", filepath.Base(path), err)
	}
	return out, nil
}
