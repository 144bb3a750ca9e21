// Command ocifs turns OCI and Docker images into filesystems without
// extracting them. See README.md for usage.
package main

import "os"

func main() {
	os.Exit(run(os.Args, os.Stderr))
}
