package faultproxy

import (
	"io"
	"net/http"
	"strconv"
	"time"
)

func (p *Proxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rule, release := p.pick(req)
	rec := p.record(Request{Method: req.Method, Path: req.URL.Path, Range: req.Header.Get("Range"), Fault: rule.Fault})
	w = &countingWriter{ResponseWriter: w, p: p, rec: rec}
	switch rule.Fault {
	case Status:
		if rule.RetryAfter != "" {
			w.Header().Set("Retry-After", rule.RetryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rule.Status)
		io.WriteString(w, `{"errors":[{"code":"UNKNOWN","message":"injected by faultproxy"}]}`)
		rule.signal(req.URL.Path)
		return
	case IgnoreRange:
		req.Header.Del("Range")
	case Delay:
		rule.signal(req.URL.Path)
		select {
		case <-time.After(rule.Wait):
		case <-req.Context().Done():
			return
		}
	}
	resp, err := p.forward(req)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	p.body(w, req, resp.Body, rule, release)
}

// countingWriter logs the status and the body bytes of a response as they
// are written: before the client can have them.
type countingWriter struct {
	http.ResponseWriter
	p   *Proxy
	rec *Request
}

func (c *countingWriter) WriteHeader(code int) {
	c.p.update(c.rec, func(r *Request) { r.Status = code })
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	// Count first: the client may have the bytes before Write returns.
	c.p.update(c.rec, func(r *Request) { r.Sent += int64(len(b)) })
	n, err := c.ResponseWriter.Write(b)
	if n < len(b) {
		c.p.update(c.rec, func(r *Request) { r.Sent -= int64(len(b) - n) })
	}
	return n, err
}

func (c *countingWriter) Flush() { c.ResponseWriter.(http.Flusher).Flush() }

// forward sends req to the backend, with the client's Host header.
func (p *Proxy) forward(req *http.Request) (*http.Response, error) {
	out, err := http.NewRequestWithContext(req.Context(), req.Method, "http://"+p.backend+req.URL.RequestURI(), req.Body)
	if err != nil {
		return nil, err
	}
	out.Header = req.Header.Clone()
	out.Host = req.Host
	out.ContentLength = req.ContentLength
	return p.client.Do(out)
}

// body copies the backend's body to the client, applying a body fault.
func (p *Proxy) body(rw http.ResponseWriter, req *http.Request, body io.Reader, rule Rule, release chan struct{}) {
	var w io.Writer = rw
	if b := p.limiter(); b != nil {
		w = limitedWriter{w: rw, b: b}
	}
	switch rule.Fault {
	case Drop, Stall:
		io.Copy(w, io.LimitReader(body, rule.After))
		rw.(http.Flusher).Flush()
		rule.signal(req.URL.Path)
		if rule.Fault == Stall {
			select {
			case <-req.Context().Done():
			case <-release:
			case <-p.closed:
			}
		}
		panic(http.ErrAbortHandler) // close the connection mid-body
	case Corrupt:
		io.Copy(w, &flipReader{r: body, at: rule.After})
	default:
		io.Copy(w, body)
	}
}

// flipReader inverts the byte at offset at of a stream.
type flipReader struct {
	r       io.Reader
	at, pos int64
}

func (f *flipReader) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	if f.at >= f.pos && f.at < f.pos+int64(n) {
		b[f.at-f.pos] ^= 0xff
	}
	f.pos += int64(n)
	return n, err
}

// ParseRange returns the first byte position of a "bytes=START-[END]"
// header, for tests that check how a client resumed; ok is false for ""
// or another form.
func ParseRange(h string) (start int64, ok bool) {
	if len(h) < len("bytes=0-") || h[:6] != "bytes=" {
		return 0, false
	}
	i := 6
	for i < len(h) && h[i] >= '0' && h[i] <= '9' {
		i++
	}
	if i == 6 || i == len(h) || h[i] != '-' {
		return 0, false
	}
	n, err := strconv.ParseInt(h[6:i], 10, 64)
	return n, err == nil
}

var _ http.Handler = (*Proxy)(nil)
