package cache

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/ocifs/ocifs/internal/faultproxy"
)

// faultyRegistry serves the in-process registry through a fault hook
// that may rewrite a blob response.
type faultyRegistry struct {
	reg http.Handler

	mu    sync.Mutex                                                     // guards fault
	fault func(w http.ResponseWriter, r *http.Request, body []byte) bool // true: handled
}

func (f *faultyRegistry) setFault(fn func(w http.ResponseWriter, r *http.Request, body []byte) bool) {
	f.mu.Lock()
	f.fault = fn
	f.mu.Unlock()
}

func (f *faultyRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	fault := f.fault
	f.mu.Unlock()
	if fault == nil || r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") {
		f.reg.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	f.reg.ServeHTTP(rec, r)
	if rec.Code != http.StatusOK || !fault(w, r, rec.Body.Bytes()) {
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}
}

func startFaultyRegistry(t *testing.T) (string, *faultyRegistry) {
	t.Helper()
	f := &faultyRegistry{reg: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), f
}

func TestPullWrongBytesIsDigestMismatch(t *testing.T) {
	host, reg := startFaultyRegistry(t)
	img, layers := threeLayers(t)
	ref := host + "/test/wrong:v1"
	push(t, ref, img)
	bad := layers[1].digest()
	reg.setFault(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		if !strings.HasSuffix(r.URL.Path, bad.String()) {
			return false
		}
		flipped := append([]byte(nil), body...)
		flipped[len(flipped)/2] ^= 0xff // same length, wrong bytes
		w.Write(flipped)
		return true
	})
	s := openStore(t, "")
	_, err := s.Pull(context.Background(), ref, PullOptions{})
	if !isErr(err, ErrDigestMismatch) || !contains(err, bad.String()) {
		t.Fatalf("err = %v, want ErrDigestMismatch naming %s", err, bad)
	}
	if exists(s.blobPath(bad)) || exists(s.unpackedPath(layers[1].diffID())) || exists(s.indexPath(layers[1].diffID())) {
		t.Error("a file of the corrupt layer exists under its final name")
	}
	checkNoTemps(t, s)
	reg.setFault(nil)
	got, err := s.Pull(context.Background(), ref, PullOptions{})
	must(t, err)
	defer got.Close()
	checkImageAgainst(t, got, layers)
}

// TestPullCutMidBlobThenRerun: a blob whose response breaks off half-way,
// and whose resumptions bring nothing, fails after the retries, leaving
// nothing; a rerun against a healthy registry completes.
func TestPullCutMidBlobThenRerun(t *testing.T) {
	host, proxy := startProxiedRegistry(t)
	img, layers := threeLayers(t)
	ref := host + "/test/cut:v1"
	push(t, ref, img)
	cut := layers[0].digest()
	proxy.Add(
		faultproxy.Rule{Path: cut.String(), Fault: faultproxy.Drop, After: int64(len(layers[0].blob) / 2), Times: 1},
		faultproxy.Rule{Path: cut.String(), Fault: faultproxy.Drop, After: 0},
	)
	s := openFastStore(t, "")
	_, err := s.Pull(context.Background(), ref, PullOptions{})
	if err == nil || !contains(err, cut.String()) || !contains(err, "giving up after 4 attempts") || isErr(err, ErrDigestMismatch) {
		t.Fatalf("err = %v, want a fetch error naming %s after 4 attempts (not a digest mismatch)", err, cut)
	}
	if exists(s.blobPath(cut)) {
		t.Fatal("partial blob under its final name")
	}
	checkNoTemps(t, s)
	proxy.Reset()
	got, err := s.Pull(context.Background(), ref, PullOptions{})
	must(t, err)
	defer got.Close()
	checkImageAgainst(t, got, layers)
}

func TestPullErrorsAreClassified(t *testing.T) {
	host, _ := startRegistry(t)
	img, _ := threeLayers(t)
	push(t, host+"/test/exists:v1", img)
	authHost := startAuthRegistry(t)
	closed := closedPort(t)
	s := openStore(t, "")
	for _, tc := range []struct {
		ref  string
		want error
		text string
	}{
		{"Bad Reference!", ErrBadReference, "Bad Reference!"},
		{"", ErrBadReference, "empty"},
		{host + "/test/exists:nope", ErrNotFound, "manifest"},
		{host + "/test/nothere:v1", ErrNotFound, ""},
		{closed + "/test/x:v1", ErrUnreachable, "connection refused"},
		{authHost + "/test/x:v1", ErrUnauthorized, ""},
		{"oci:" + filepath.Join(t.TempDir(), "missing"), ErrNotFound, "no OCI layout there"},
		{"docker-archive:" + filepath.Join(t.TempDir(), "missing.tar"), ErrNotFound, "opening the archive: no such file"},
	} {
		start := time.Now()
		_, err := s.Pull(context.Background(), tc.ref, PullOptions{})
		if !isErr(err, tc.want) || !contains(err, tc.text) {
			t.Errorf("Pull(%q) = %v, want %v containing %q", tc.ref, err, tc.want, tc.text)
		}
		t.Logf("%q: %v (%v)", tc.ref, err, time.Since(start))
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Pull(%q) took %v", tc.ref, d)
		}
	}
}

// startAuthRegistry serves a registry that answers 401 to every request
// without credentials, as a registry with htpasswd auth does.
func startAuthRegistry(t *testing.T) string {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := r.BasicAuth(); !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// closedPort returns a loopback host:port nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestStaleTempsAreCleaned(t *testing.T) {
	s := openStore(t, "")
	stale := filepath.Join(s.Dir(), tmpDir, "blob-x.1.tmp")
	must(t, os.WriteFile(stale, []byte("partial"), 0o644))
	old := time.Now().Add(-2 * staleTempAge)
	must(t, os.Chtimes(stale, old, old))
	live, err := s.newTemp("blob-live")
	must(t, err)
	defer live.abort()
	must(t, os.Chtimes(live.f.Name(), old, old))
	fresh := filepath.Join(s.Dir(), tmpDir, "blob-fresh.2.tmp")
	must(t, os.WriteFile(fresh, nil, 0o644))
	if n, _ := s.cleanStaleTemps(); n != 1 {
		t.Errorf("removed %d temp files, want 1", n)
	}
	if exists(stale) || !exists(live.f.Name()) || !exists(fresh) {
		t.Errorf("stale exists=%v live exists=%v fresh exists=%v; want false true true", exists(stale), exists(live.f.Name()), exists(fresh))
	}
}
