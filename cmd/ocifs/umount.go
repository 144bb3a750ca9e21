package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

func umountCommand() *cli.Command {
	return &cli.Command{
		Name:  "umount",
		Usage: "(not yet implemented)",
		Action: func(c *cli.Context) error {
			return errors.New("umount: not yet implemented")
		},
	}
}
