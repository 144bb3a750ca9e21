package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

func cacheCommand() *cli.Command {
	return &cli.Command{
		Name:  "cache",
		Usage: "(not yet implemented)",
		Action: func(c *cli.Context) error {
			return errors.New("cache: not yet implemented")
		},
	}
}
