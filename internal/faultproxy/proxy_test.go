package faultproxy

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// backend serves /blob (with Range support, as a registry does) and
// answers 404 elsewhere.
func backend(t *testing.T, blob []byte) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/blob" {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(blob))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func get(t *testing.T, p *Proxy, rangeHdr string) (int, []byte, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.Addr+"/blob", nil)
	if rangeHdr != "" {
		req.Header.Set("Range", rangeHdr)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func TestFaults(t *testing.T) {
	blob := bytes.Repeat([]byte("0123456789"), 1000)
	p := Start(t, backend(t, blob))

	code, b, err := get(t, p, "")
	if err != nil || code != 200 || !bytes.Equal(b, blob) {
		t.Fatalf("pass-through: %d %v %d bytes", code, err, len(b))
	}

	p.Add(Rule{Path: "/blob", Fault: Drop, After: 100, Times: 1})
	code, b, err = get(t, p, "")
	if err == nil || code != 200 || len(b) != 100 {
		t.Fatalf("drop: %d %v %d bytes; want 200, an error and 100 bytes", code, err, len(b))
	}
	if code, b, err = get(t, p, "bytes=100-"); err != nil || code != 206 || !bytes.Equal(b, blob[100:]) {
		t.Fatalf("range after a used-up rule: %d %v %d bytes", code, err, len(b))
	}

	p.Add(Rule{Path: "/blob", Fault: IgnoreRange, Times: 1})
	if code, b, _ = get(t, p, "bytes=100-"); code != 200 || len(b) != len(blob) {
		t.Fatalf("ignore range: %d, %d bytes", code, len(b))
	}

	p.Add(Rule{Path: "/blob", Fault: Status, Status: 429, RetryAfter: "2", Times: 1})
	if code, _, _ = get(t, p, ""); code != 429 {
		t.Fatalf("status: %d", code)
	}

	p.Add(Rule{Path: "/blob", Fault: Corrupt, After: 5, Times: 1})
	if _, b, _ = get(t, p, ""); b[5] != blob[5]^0xff || !bytes.Equal(b[6:], blob[6:]) {
		t.Fatal("corrupt: byte 5 not flipped alone")
	}

	stalled := make(chan string, 1)
	p.Add(Rule{Path: "/blob", Fault: Stall, After: 10, Times: 1, Signal: stalled})
	done := make(chan error)
	go func() { _, _, err := get(t, p, ""); done <- err }()
	if path := <-stalled; path != "/blob" {
		t.Fatalf("signal: %q", path)
	}
	select {
	case err := <-done:
		t.Fatalf("stalled request returned: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	p.Release()
	if err := <-done; err == nil {
		t.Fatalf("released stall: err = %v, want a broken body", err)
	}

	got := p.Requests()
	want := []Fault{Pass, Drop, Pass, IgnoreRange, Status, Corrupt, Stall}
	if len(got) != len(want) {
		t.Fatalf("%d requests recorded, want %d: %+v", len(got), len(want), got)
	}
	for i, r := range got {
		if r.Fault != want[i] {
			t.Errorf("request %d: fault %v, want %v", i, r.Fault, want[i])
		}
	}
	if got[1].Sent != 100 || got[2].Range != "bytes=100-" || got[2].Status != 206 || got[6].Sent != 10 {
		t.Errorf("log: %+v", got)
	}
	if s, ok := ParseRange("bytes=100-199"); !ok || s != 100 {
		t.Errorf("ParseRange = %d, %v", s, ok)
	}
}
