package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"

	"github.com/ocifs/ocifs/cache"
)

// Exit codes, as documented in README.md.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitImage       = 3
	exitPrereq      = 4
	exitInterrupted = 130
)

// cliError carries an exit code and an optional hint with an error.
type cliError struct {
	code int
	hint string
	err  error
}

func (e *cliError) Error() string { return e.err.Error() }
func (e *cliError) Unwrap() error { return e.err }

// genericUsageHint is a usage error's hint until the command that failed
// puts its name in (nameCommand).
const genericUsageHint = "run 'ocifs COMMAND --help' for usage"

func usageError(err error) error {
	return &cliError{code: exitUsage, hint: genericUsageHint, err: err}
}

func usagef(format string, args ...any) error {
	return usageError(fmt.Errorf(format, args...))
}

// interrupted is the error of a command stopped by a signal: one word,
// the same for every command; what the signal cut short (a canceled
// context, a closed file) says nothing more.
func interrupted() error {
	return &cliError{code: exitInterrupted, err: errors.New("interrupted")}
}

// classify maps an error to its exit code and a hint for the user. It is
// the one place where errors from the libraries meet exit codes.
func classify(err error) (code int, hint string) {
	var ce *cliError
	if errors.As(err, &ce) {
		return ce.code, ce.hint
	}
	if code, hint, ok := classifyMount(err); ok {
		return code, hint
	}
	if hint, ok := limitHint(err); ok {
		return exitImage, hint
	}
	if code, hint, ok := classifyBuild(err); ok {
		return code, hint
	}
	switch {
	case errors.Is(err, context.Canceled):
		return exitInterrupted, ""
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		// The build's output disk is classifyBuild's (builder.ErrNoSpace);
		// what else ocifs writes goes to the cache, but for the temp
		// files of convert's eStargz writer (in $TMPDIR), which the
		// message's path then names.
		return exitFailure, "the cache's disk is full: free space ('ocifs cache prune' removes what no image uses) or choose another cache with --cache-dir"
	case errors.Is(err, cache.ErrUnreachable):
		return exitFailure, unreachableHint(err)
	case errors.Is(err, cache.ErrUnauthorized):
		return exitImage, "log in with 'docker login HOST' (ocifs reads ~/.docker/config.json and credential helpers), and check the repository name"
	case errors.Is(err, cache.ErrNoPlatform):
		return exitImage, "choose a platform the image has (named above) with --platform"
	case errors.Is(err, cache.ErrDigestMismatch):
		return exitImage, "the source served bytes that do not match their digest; nothing was stored under that digest. Retry; if it persists, the image at the source is damaged"
	case errors.Is(err, cache.ErrNotFound):
		return exitImage, "check the image name and tag ('ocifs cache ls' lists what is stored)"
	case errors.Is(err, cache.ErrBadReference), errors.Is(err, cache.ErrInvalidImage):
		return exitImage, ""
	}
	return exitFailure, ""
}

// unreachableHint suggests --insecure when a TLS client met a plain-HTTP
// registry, else checking the address.
func unreachableHint(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "HTTP response to HTTPS client") || strings.Contains(msg, "first record does not look like a TLS handshake") {
		return "the registry speaks plain HTTP: add --insecure (loopback and private addresses need no flag)"
	}
	return "check the registry address and that it is running and reachable from here"
}

// report prints err as one "ocifs: …" line and an optional hint line, and
// returns the exit code.
func report(w io.Writer, err error) int {
	code, hint := classify(err)
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	fmt.Fprintf(w, "ocifs: %s\n", msg)
	if hint != "" {
		fmt.Fprintf(w, "hint: %s\n", hint)
	}
	return code
}
