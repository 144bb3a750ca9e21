package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

func pullCommand() *cli.Command {
	return &cli.Command{
		Name:  "pull",
		Usage: "(not yet implemented)",
		Action: func(c *cli.Context) error {
			return errors.New("pull: not yet implemented")
		},
	}
}
