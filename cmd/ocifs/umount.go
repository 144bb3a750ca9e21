package main

import (
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/ocifs/ocifs/fusefs"
)

func umountCommand() *cli.Command {
	return &cli.Command{
		Name:      "umount",
		Usage:     "unmount an image mounted with 'ocifs mount' (also when its server died)",
		ArgsUsage: "DIR",
		Description: "Unmounts DIR; its background server then exits. A mount whose server is gone\n" +
			"(\"transport endpoint is not connected\") is cleaned up the same way. While DIR is busy\n" +
			"(open files, a shell inside) it retries for a few seconds, then fails unless --lazy.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "lazy", Aliases: []string{"l"}, Usage: "detach now even if busy; the kernel finishes when the last user leaves"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("umount takes DIR, got %d arguments", c.NArg())
			}
			dir, err := filepath.Abs(c.Args().First())
			if err != nil {
				return err
			}
			if c.Bool("lazy") {
				return fusefs.UnmountLazy(dir)
			}
			return fusefs.Unmount(dir)
		},
	}
}
