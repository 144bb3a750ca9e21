// Package testregistry gives tests a real CNCF distribution registry
// (Debian's docker-registry binary) on the loopback interface.
//
// Start reuses the registry named by OCIFS_TEST_REGISTRY=host:port when it
// is set (`make test` starts one for the whole run, which saves a process
// start per test); otherwise it starts its own docker-registry on
// 127.0.0.1 with a free port and storage in t.TempDir(), waits until /v2/
// answers, and stops it when the test ends. Either way each call gets a
// repository prefix of its own, derived from the test name plus a random
// suffix, so tests sharing one registry never see each other's tags, and
// reruns (-count=N) never see an earlier run's.
//
// StartWithAuth always starts its own registry, protected by htpasswd
// basic auth (bcrypt entries, the only kind distribution accepts), so that
// unauthorized handling is tested against the real server's 401s and
// WWW-Authenticate headers.
//
// Loopback registries speak plain HTTP; go-containerregistry picks http for
// 127.0.0.1 by itself, so references from Repo need no insecure option.
//
// Hazards: the free port is found by binding :0 and closing it, so another
// process may take it before the registry does; Start retries a few times
// and reports the registry's own log when it never comes up. A test that
// needs the registry binary and lacks it is skipped (or fails under
// OCIFS_TEST_STRICT=1) through internal/testenv.
package testregistry
