package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

func mountCommand() *cli.Command {
	return &cli.Command{
		Name:  "mount",
		Usage: "(not yet implemented)",
		Action: func(c *cli.Context) error {
			return errors.New("mount: not yet implemented")
		},
	}
}
