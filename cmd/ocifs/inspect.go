package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:  "inspect",
		Usage: "(not yet implemented)",
		Action: func(c *cli.Context) error {
			return errors.New("inspect: not yet implemented")
		},
	}
}
