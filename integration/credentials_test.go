package integration

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ti "github.com/ocifs/ocifs/internal/testimage"
	"github.com/ocifs/ocifs/internal/testregistry"
)

// Credentials come only from the docker config (and credential helpers)
// or, without one, podman's auth.json, and never reach the output, even
// with --debug and retries to log.

// authFile writes a login for host in the docker config's format (which
// podman's auth.json shares) to a new directory's config.json, and
// returns that file.
func authFile(t *testing.T, host, user, pass string) string {
	file := filepath.Join(t.TempDir(), "config.json")
	cfg := map[string]any{"auths": map[string]any{host: map[string]string{
		"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass)),
	}}}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// dockerConfig returns the environment that points ocifs at a docker
// config with a login for host.
func dockerConfig(t *testing.T, host, user, pass string) []string {
	return []string{"DOCKER_CONFIG=" + filepath.Dir(authFile(t, host, user, pass))}
}

// podmanAuth returns the environment of a user without a docker config
// whose podman auth.json (REGISTRY_AUTH_FILE) has a login for host.
func podmanAuth(t *testing.T, host, user, pass string) []string {
	return []string{"HOME=" + t.TempDir(), "DOCKER_CONFIG=", "REGISTRY_AUTH_FILE=" + authFile(t, host, user, pass)}
}

// checkNoSecrets fails if out shows any of the secrets, their basic-auth
// encoding or an Authorization header.
func checkNoSecrets(t *testing.T, what, out, user string, secrets ...string) {
	t.Helper()
	leaks := []string{"Authorization", "authorization:", "Bearer ", "Basic "}
	for _, s := range secrets {
		leaks = append(leaks, s, base64.StdEncoding.EncodeToString([]byte(user+":"+s)))
	}
	for _, l := range leaks {
		if strings.Contains(out, l) {
			t.Errorf("%s output shows %q:\n%s", what, l, out)
		}
	}
}

// TestDebugShowsNoBasicCredentials pulls from the real registry with
// htpasswd auth, using the docker config, with --debug.
func TestDebugShowsNoBasicCredentials(t *testing.T) {
	const user, pass = "alice", "b4sic-s3cret-Pa55"
	reg := testregistry.StartWithAuth(t, user, pass)
	ref := reg.Repo("private") + ":v1"
	ti.Push(t, pullImage(t, "linux/amd64"), ref, remote.WithAuth(&authn.Basic{Username: user, Password: pass}))
	stdout, stderr, code := runOcifs(t, dockerConfig(t, reg.Addr, user, pass), "--debug", "pull", "--verbose", ref)
	if code != 0 {
		t.Fatalf("pull with credentials: exit %d\n%s", code, stderr)
	}
	checkNoSecrets(t, "pull --debug", stdout+stderr, user, pass)

	stdout, stderr, code = runOcifs(t, append(podmanAuth(t, reg.Addr, user, pass), "OCIFS_CACHE_DIR="+t.TempDir()), "--debug", "pull", ref)
	if code != 0 {
		t.Fatalf("pull with podman's auth.json and no docker config: exit %d\n%s", code, stderr)
	}
	checkNoSecrets(t, "pull --debug (podman auth.json)", stdout+stderr, user, pass)

	_, stderr, code = runOcifs(t, dockerConfig(t, reg.Addr, user, "wr0ng-Pa55word"), "--debug", "pull", reg.Repo("private")+":v1")
	if code != 3 || !strings.Contains(stderr, "hint: log in") {
		t.Errorf("pull with a wrong password: exit %d\n%s", code, stderr)
	}
	checkNoSecrets(t, "pull --debug (wrong password)", stderr, user, pass, "wr0ng-Pa55word")
}

// tokenFront puts token authentication in front of a registry the way
// Docker Hub does: 401 with a Bearer challenge, a token for the basic
// credentials at /token, then the token on every request. Its first blob
// request answers 503, so that --debug has a retry to log.
type tokenFront struct {
	user, pass, token string
	proxy             *httputil.ReverseProxy
	failed            atomic.Bool
}

func (f *tokenFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		if u, p, ok := r.BasicAuth(); !ok || u != f.user || p != f.pass {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"token": f.token, "access_token": f.token})
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="front"`, r.Host))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"token required"}]}`)
		return
	}
	if strings.Contains(r.URL.Path, "/blobs/") && f.failed.CompareAndSwap(false, true) {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	f.proxy.ServeHTTP(w, r)
}

// TestDebugShowsNoToken pulls through a token-auth front with --debug.
func TestDebugShowsNoToken(t *testing.T) {
	const user, pass, token = "bob", "t0ken-Pa55", "tok-7c1d2e3f4a5b6c7d8e9f"
	reg := testregistry.Start(t)
	ti.Push(t, pullImage(t, "linux/amd64"), reg.Repo("tok")+":v1")
	backend, _ := url.Parse("http://" + reg.Addr)
	front := &tokenFront{user: user, pass: pass, token: token, proxy: httputil.NewSingleHostReverseProxy(backend)}
	srv := httptest.NewServer(front)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref := host + "/" + reg.Prefix() + "/tok:v1"
	stdout, stderr, code := runOcifs(t, dockerConfig(t, host, user, pass), "--debug", "pull", "--verbose", ref)
	if code != 0 {
		t.Fatalf("pull through a token front: exit %d\n%s", code, stderr)
	}
	if !front.failed.Load() || !strings.Contains(stderr, "503") {
		t.Errorf("the 503 was not retried and logged:\n%s", stderr)
	}
	t.Logf("%s", stderr)
	checkNoSecrets(t, "pull --debug", stdout+stderr, user, pass, token)
}

// TestInsecureTLS: --insecure also accepts a registry's HTTPS with a
// certificate nobody vouches for (README: "or HTTPS without certificate
// checks"): the real registry behind a TLS front with a self-signed
// certificate.
func TestInsecureTLS(t *testing.T) {
	reg := testregistry.Start(t)
	ti.Push(t, pullImage(t, "linux/amd64"), reg.Repo("tls")+":v1")
	backend, _ := url.Parse("http://" + reg.Addr)
	srv := httptest.NewTLSServer(httputil.NewSingleHostReverseProxy(backend))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "https://") + "/" + reg.Prefix() + "/tls:v1"
	if _, stderr, code := runOcifs(t, nil, "--insecure", "pull", ref); code != 0 {
		t.Fatalf("pull --insecure over HTTPS with a self-signed certificate: exit %d\n%s", code, stderr)
	}
}
