package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
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

func usageError(err error) error {
	return &cliError{code: exitUsage, hint: "run 'ocifs COMMAND --help' for usage", err: err}
}

func usagef(format string, args ...any) error {
	return usageError(fmt.Errorf(format, args...))
}

func interrupted(err error) error {
	return &cliError{code: exitInterrupted, err: fmt.Errorf("interrupted: %w", err)}
}

// classify maps an error to its exit code and a hint for the user. It is
// the one place where errors from the libraries meet exit codes.
func classify(err error) (code int, hint string) {
	var ce *cliError
	if errors.As(err, &ce) {
		return ce.code, ce.hint
	}
	switch {
	case errors.Is(err, context.Canceled):
		return exitInterrupted, ""
	}
	return exitFailure, ""
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
