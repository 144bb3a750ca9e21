package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
)

// A background mount server has no terminal: it logs to a file in the
// cache, one per mount point (truncated when a mount starts there), so
// that what went wrong while serving (a read that failed, and why) can be
// found afterwards.

// maxServerLog bounds a server's log file; what comes after is dropped.
const maxServerLog = 8 << 20

// serverLogPath is the log file of the server of mount point dir.
func serverLogPath(cacheDir, dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return filepath.Join(cacheDir, "ocifs", "logs", "mount-"+hex.EncodeToString(sum[:8])+".log")
}

// openServerLog truncates and opens the log of dir's server; on failure
// the log goes nowhere.
func openServerLog(cacheDir, dir string) io.Writer {
	p := serverLogPath(cacheDir, dir)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return io.Discard
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return io.Discard
	}
	return &cappedWriter{w: f, left: maxServerLog}
}

// cappedWriter writes up to a budget, then silently drops what does not
// fit. It takes no lock: its one writer, the server's switchWriter,
// already serializes writes.
type cappedWriter struct {
	w    io.Writer
	left int64
}

func (c *cappedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > c.left {
		return len(p), nil
	}
	c.left -= int64(len(p))
	return c.w.Write(p)
}
