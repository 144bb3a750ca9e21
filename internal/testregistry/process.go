package testregistry

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ocifs/ocifs/internal/testenv"
)

const (
	binary      = "docker-registry"
	installHint = "apt-get install -y docker-registry (or set OCIFS_TEST_REGISTRY=host:port to use a running registry)"
	readyWithin = 20 * time.Second
	attempts    = 3
)

type process struct {
	addr string
	cmd  *exec.Cmd
	log  string
	// done is closed once cmd has been waited for; waitErr is set before.
	done    chan struct{}
	waitErr error
}

// startProcess runs docker-registry until t ends. htpasswd, if not empty,
// is the path of an htpasswd file to protect the registry with.
func startProcess(t testing.TB, htpasswd string) *process {
	t.Helper()
	bin := testenv.RequireTool(t, binary, installHint)
	dir := t.TempDir()
	var lastErr error
	for i := 0; i < attempts; i++ {
		p, err := tryStart(bin, dir, i, htpasswd)
		if err == nil {
			t.Cleanup(p.stop)
			return p
		}
		lastErr = err
	}
	t.Fatalf("starting %s: %v", binary, lastErr)
	return nil
}

func tryStart(bin, dir string, attempt int, htpasswd string) (*process, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	storage := filepath.Join(dir, "storage")
	conf := filepath.Join(dir, fmt.Sprintf("config-%d.yml", attempt))
	if err := os.WriteFile(conf, []byte(config(addr, storage, htpasswd)), 0o644); err != nil {
		return nil, fmt.Errorf("writing registry config: %w", err)
	}
	logPath := filepath.Join(dir, fmt.Sprintf("registry-%d.log", attempt))
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating registry log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "serve", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("running %s: %w", bin, err)
	}
	p := &process{addr: addr, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { p.waitErr = cmd.Wait(); close(p.done) }()
	if err := p.waitReady(); err != nil {
		p.stop()
		return nil, fmt.Errorf("%w; registry log:\n%s", err, p.logTail())
	}
	return p, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func config(addr, storage, htpasswd string) string {
	c := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
`, storage, addr)
	if htpasswd != "" {
		c += fmt.Sprintf("auth:\n  htpasswd:\n    realm: ocifs-test\n    path: %s\n", htpasswd)
	}
	return c
}

// waitReady polls /v2/ until it answers 200 (or 401 with auth on).
func (p *process) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), readyWithin)
	defer cancel()
	url := "http://" + p.addr + "/v2/"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("registry exited before answering on %s: %v", p.addr, p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("registry did not answer %s within %v", url, readyWithin)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *process) logTail() string {
	b, _ := os.ReadFile(p.log)
	s := string(b)
	if len(s) > 4000 {
		s = "..." + s[len(s)-4000:]
	}
	return strings.TrimSpace(s)
}

// writeHtpasswd writes a one-user htpasswd file with a bcrypt hash.
func writeHtpasswd(t testing.TB, user, pass string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatalf("hashing the registry password: %v", err)
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatalf("writing htpasswd: %v", err)
	}
	return path
}
