// Command mkdemo writes the ocifs demo image (internal/demo) as an OCI
// layout: mkdemo DIR writes DIR with tag "demo" and prints its digest.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/ocifs/ocifs/internal/demo"
)

func main() {
	if len(os.Args) != 2 || strings.HasPrefix(os.Args[1], "-") {
		fmt.Fprintln(os.Stderr, "usage: mkdemo DIR")
		os.Exit(2)
	}
	d, err := demo.WriteLayout(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkdemo: writing demo layout: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("%s:%s %s\n", os.Args[1], demo.Tag, d)
}
