package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

func buildCommand() *cli.Command {
	return &cli.Command{
		Name:  "build",
		Usage: "(not yet implemented)",
		Action: func(c *cli.Context) error {
			return errors.New("build: not yet implemented")
		},
	}
}
