package integration

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ti "github.com/ocifs/ocifs/internal/testimage"
	"github.com/ocifs/ocifs/internal/testregistry"
)

// closedAddr is a loopback host:port nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// blobProxy is a loopback reverse proxy in front of the real registry
// whose body hook may alter or stall blob downloads.
type blobProxy struct {
	addr string

	mu   sync.Mutex // guards hook
	hook func(digest string, body io.ReadCloser) io.ReadCloser
}

func startBlobProxy(t *testing.T, registryAddr string) *blobProxy {
	p := &blobProxy{}
	target, _ := url.Parse("http://" + registryAddr)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1
	rp.ModifyResponse = func(resp *http.Response) error {
		i := strings.Index(resp.Request.URL.Path, "/blobs/sha256:")
		if resp.Request.Method != http.MethodGet || i < 0 || resp.StatusCode != http.StatusOK {
			return nil
		}
		p.mu.Lock()
		hook := p.hook
		p.mu.Unlock()
		if hook != nil {
			resp.Body = hook(resp.Request.URL.Path[i+len("/blobs/"):], resp.Body)
		}
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	p.addr = strings.TrimPrefix(srv.URL, "http://")
	return p
}

func (p *blobProxy) setHook(h func(digest string, body io.ReadCloser) io.ReadCloser) {
	p.mu.Lock()
	p.hook = h
	p.mu.Unlock()
}

// flipReader flips one byte at offset at of a stream.
type flipReader struct {
	io.ReadCloser
	at, pos int64
}

func (f *flipReader) Read(b []byte) (int, error) {
	n, err := f.ReadCloser.Read(b)
	if f.at >= f.pos && f.at < f.pos+int64(n) {
		b[f.at-f.pos] ^= 0xff
	}
	f.pos += int64(n)
	return n, err
}

func TestPullWrongBytesFromProxy(t *testing.T) {
	reg := testregistry.Start(t)
	img := pullImage(t, "linux/amd64")
	ti.Push(t, img, reg.Repo("wrong")+":v1")
	proxy := startBlobProxy(t, reg.Addr)
	layers, _ := img.Layers()
	bad, _ := layers[0].Digest()
	size, _ := layers[0].Size()
	proxy.setHook(func(d string, body io.ReadCloser) io.ReadCloser {
		if d != bad.String() {
			return body
		}
		return &flipReader{ReadCloser: body, at: size / 2}
	})
	ref := proxy.addr + "/" + reg.Prefix() + "/wrong:v1"
	_, stderr, code := runOcifs(t, nil, "pull", ref)
	if code != 3 || !strings.Contains(stderr, bad.String()) || !strings.Contains(stderr, "hashes to") {
		t.Fatalf("pull through a corrupting proxy: exit %d, stderr %q; want 3 naming %s", code, stderr, bad)
	}
	if _, err := os.Stat(filepath.Join(cacheDir(t), "blobs", "sha256", bad.Hex)); err == nil {
		t.Fatal("the corrupt blob exists under its final name")
	}
	proxy.setHook(nil)
	mustOcifs(t, nil, "pull", ref)
	mustOcifs(t, nil, "cache", "verify")
}

// stallReader passes half of a stream, signals, then blocks until release.
type stallReader struct {
	io.ReadCloser
	left    int64
	stalled chan<- struct{}
	release <-chan struct{}
	once    sync.Once
}

func (s *stallReader) Read(b []byte) (int, error) {
	if s.left <= 0 {
		s.once.Do(func() { s.stalled <- struct{}{} })
		<-s.release
		return 0, io.ErrUnexpectedEOF
	}
	if int64(len(b)) > s.left {
		b = b[:s.left]
	}
	n, err := s.ReadCloser.Read(b)
	s.left -= int64(n)
	return n, err
}

// TestPullKilledMidBlobThenRerun kills `ocifs pull` with SIGKILL while a
// blob is half downloaded, then pulls again.
func TestPullKilledMidBlobThenRerun(t *testing.T) {
	reg := testregistry.Start(t)
	img := pullImage(t, "linux/amd64")
	ti.Push(t, img, reg.Repo("killed")+":v1")
	proxy := startBlobProxy(t, reg.Addr)
	layers, _ := img.Layers()
	target, _ := layers[0].Digest()
	size, _ := layers[0].Size()
	stalled, release := make(chan struct{}, 1), make(chan struct{})
	defer close(release)
	proxy.setHook(func(d string, body io.ReadCloser) io.ReadCloser {
		if d != target.String() {
			return body
		}
		return &stallReader{ReadCloser: body, left: size / 2, stalled: stalled, release: release}
	})
	ref := proxy.addr + "/" + reg.Prefix() + "/killed:v1"
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout())
	defer cancel()
	cmd := ocifsCommand(ctx, t, nil, "pull", ref)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stalled:
	case <-time.After(time.Minute):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatal("ocifs pull never reached the middle of the blob")
	}
	time.Sleep(200 * time.Millisecond) // let it write what it received
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(cacheDir(t), "blobs", "sha256", target.Hex)); err == nil {
		t.Fatal("a partial blob is under its final name")
	}
	proxy.setHook(nil)
	mustOcifs(t, nil, "pull", ref)
	mustOcifs(t, nil, "cache", "verify")
}

// TestConcurrentPullProcesses runs two `ocifs pull` of the same image into
// one cache at once, through a proxy that slows blobs down so that they
// overlap.
func TestConcurrentPullProcesses(t *testing.T) {
	reg := testregistry.Start(t)
	img := pullImage(t, "linux/amd64")
	ti.Push(t, img, reg.Repo("conc")+":v1")
	proxy := startBlobProxy(t, reg.Addr)
	proxy.setHook(func(d string, body io.ReadCloser) io.ReadCloser {
		time.Sleep(150 * time.Millisecond)
		return body
	})
	ref := proxy.addr + "/" + reg.Prefix() + "/conc:v1"
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout())
	defer cancel()
	var wg sync.WaitGroup
	outs := make([]string, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() {
			b, err := ocifsCommand(ctx, t, nil, "pull", ref).CombinedOutput()
			outs[i], errs[i] = string(b), err
		})
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil {
			t.Errorf("pull %d: %v\n%s", i, errs[i], outs[i])
		}
	}
	mustOcifs(t, nil, "cache", "verify")
	if ls := cacheLs(t); len(ls) != 1 || ls[0].Problem != "" {
		t.Errorf("cache ls: %+v", ls)
	}
}
