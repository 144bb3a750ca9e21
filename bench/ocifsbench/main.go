package main

import (
	"fmt"
	"os"
)

const usage = `usage:
  ocifsbench push ROOTFS REF
  ocifsbench mkfs -ref REF -cache DIR SRC OUT
  ocifsbench profile -ref REF -cache DIR [-cpuprofile FILE]
  ocifsbench measure [flags]`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch args := os.Args[2:]; os.Args[1] {
	case "push":
		if len(args) != 2 {
			err = fmt.Errorf("push takes ROOTFS REF")
			break
		}
		err = runPush(args[0], args[1])
	case "mkfs":
		err = runMkfs(args)
	case "profile":
		err = runProfile(args)
	case "measure":
		err = runMeasure(args)
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ocifsbench:", err)
		os.Exit(1)
	}
}
