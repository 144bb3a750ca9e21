// Package faultproxy is a loopback HTTP proxy that tests put in front of a
// real registry to make it misbehave the way networks and registries do:
// drop the connection in the middle of a body, stall, answer 500 or 429,
// ignore Range, or serve wrong bytes.
//
//	p := faultproxy.Start(t, reg.Addr)
//	p.Add(faultproxy.Rule{Path: "/blobs/" + digest, Fault: faultproxy.Drop, After: size / 2, Times: 1})
//	ref := p.Addr + "/" + repo + ":v1" // pull through p
//	...
//	for _, r := range p.Requests() { ... r.Range, r.Status, r.Sent ... }
//
// A request is matched against the rules in the order they were added;
// the first rule whose Method and Path match and which has uses left
// (Times, 0 meaning unlimited) applies, and only that one. Requests that
// match no rule are passed through unchanged. Faults that act on a body
// (Drop, Stall, Corrupt) apply to the backend's answer, whatever its
// status, at byte After of the body as sent by this proxy.
//
// The proxy forwards the client's Host header, so that a registry builds
// the URLs it returns (upload locations) with the proxy's address. It
// never follows redirects: the client sees them.
//
// Every request is recorded (method, path, Range header, the status sent,
// the body bytes sent, the fault applied), so tests can assert how a
// client retried and resumed.
//
// SetRate caps the bandwidth of all responses together (a token bucket),
// for tests of behaviour on slow links.
//
// Hazards: a Stall holds its handler until the client goes away, the
// stall is released (Release) or the proxy is closed; a client with no
// timeout of its own hangs there, which is what such tests check. The
// package does not import "testing"; Start takes a TB.
package faultproxy
