package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/ocifs/ocifs/fusefs"
	"github.com/urfave/cli/v2"
)

// warmCommand is the child that walks a build's mount ahead of mkfs.ext4
// -d (fusefs.WarmWalk). It is a separate process because the serving
// process must never use its own mount: killed mid-request, it would hang
// forever and the mount with it.
const warmCommand = "__warm"

func warmCmd() *cli.Command {
	return &cli.Command{
		Name:      warmCommand,
		Hidden:    true,
		Usage:     "walk a mount ahead of mkfs.ext4 -d (started by 'ocifs build')",
		ArgsUsage: "DIR",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("%s takes DIR", warmCommand)
			}
			return fusefs.WarmWalk(c.Context, c.Args().First())
		},
	}
}

// startWarm starts the walk of dir in a child process, which dies with
// this one. The returned stop kills it and waits; it reports the walk's
// error, if it ended on its own with one.
func startWarm(dir string) (stop func() error, err error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the ocifs binary: %w", err)
	}
	cmd := exec.Command(self, warmCommand, dir)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the warm-up walk: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return func() error {
		select {
		case err := <-done:
			return err
		default:
		}
		cmd.Process.Kill()
		err := <-done
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ProcessState.Sys().(syscall.WaitStatus).Signaled() {
			return nil // stopped by us
		}
		return err
	}, nil
}
