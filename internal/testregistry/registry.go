package testregistry

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// AddrEnv names a registry (host:port) shared by all tests of a run.
const AddrEnv = "OCIFS_TEST_REGISTRY"

// Registry is a running registry and the repository prefix of one test.
type Registry struct {
	// Addr is host:port, e.g. 127.0.0.1:43121.
	Addr string
	// User and Pass are the credentials of a registry from StartWithAuth,
	// empty otherwise.
	User, Pass string
	// Shared is true when the registry came from OCIFS_TEST_REGISTRY.
	Shared bool

	prefix string
}

// Start returns a registry for t: the shared one named by
// OCIFS_TEST_REGISTRY if set, else a docker-registry process of its own.
func Start(t testing.TB) *Registry {
	t.Helper()
	if addr := os.Getenv(AddrEnv); addr != "" {
		return &Registry{Addr: addr, Shared: true, prefix: uniquePrefix(t)}
	}
	p := startProcess(t, "")
	return &Registry{Addr: p.addr, prefix: uniquePrefix(t)}
}

// StartWithAuth starts a registry of its own that demands HTTP basic auth
// with user and pass.
func StartWithAuth(t testing.TB, user, pass string) *Registry {
	t.Helper()
	htpasswd := writeHtpasswd(t, user, pass)
	p := startProcess(t, htpasswd)
	return &Registry{Addr: p.addr, User: user, Pass: pass, prefix: uniquePrefix(t)}
}

// Repo returns the full reference prefix of repository name for this test,
// e.g. "127.0.0.1:43121/testpull-3f9a2c/alpine". Append ":tag" or
// "@sha256:..." to make a reference.
func (r *Registry) Repo(name string) string {
	name = strings.Trim(name, "/")
	if name == "" {
		return r.Addr + "/" + r.prefix
	}
	return r.Addr + "/" + r.prefix + "/" + name
}

// Prefix returns the repository prefix of this test (no host).
func (r *Registry) Prefix() string { return r.prefix }

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

// uniquePrefix turns the test name into a valid repository path component
// ([a-z0-9]+ separated by single dashes) plus a random suffix.
func uniquePrefix(t testing.TB) string {
	name := nonName.ReplaceAllString(strings.ToLower(t.Name()), "-")
	name = strings.Trim(name, "-")
	if len(name) > 60 {
		name = strings.Trim(name[:60], "-")
	}
	if name == "" {
		name = "test"
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("reading random bytes: %v", err)
	}
	return fmt.Sprintf("%s-%s", name, hex.EncodeToString(b[:]))
}
