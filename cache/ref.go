package cache

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Transport prefixes of REF, spelled as skopeo spells them.
const (
	ociPrefix     = "oci:"
	archivePrefix = "docker-archive:"
)

type refKind int

const (
	kindRegistry refKind = iota
	kindLayout
	kindArchive
)

// refSpec is a parsed REF.
type refSpec struct {
	kind refKind
	reg  name.Reference // kindRegistry
	path string         // kindLayout, kindArchive: absolute
	tag  string         // kindLayout: ref.name to match; kindArchive: RepoTag
	// normalized is the REF as recorded in index.json: registry
	// references fully qualified (index.docker.io/library/alpine:latest),
	// paths absolute.
	normalized string
}

// ParseRef checks REF and returns its normalized form, the name under
// which the store records it.
func ParseRef(ref string, insecure bool) (string, error) {
	spec, err := parseRef(ref, insecure)
	if err != nil {
		return "", err
	}
	return spec.normalized, nil
}

func parseRef(ref string, insecure bool) (*refSpec, error) {
	switch {
	case strings.TrimSpace(ref) == "":
		return nil, errorf(ErrBadReference, "empty image reference")
	case strings.HasPrefix(ref, ociPrefix):
		return parsePathRef(kindLayout, ociPrefix, ref)
	case strings.HasPrefix(ref, archivePrefix):
		return parsePathRef(kindArchive, archivePrefix, ref)
	}
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return nil, errorf(ErrBadReference, "parsing image reference %q: %s (want [HOST/]REPO[:TAG|@sha256:DIGEST], oci:DIR[:NAME] or docker-archive:FILE[:NAME])", ref, badRefReason(err))
	}
	return &refSpec{kind: kindRegistry, reg: r, normalized: r.Name()}, nil
}

// parsePathRef splits PREFIX:PATH[:TAG] at the first colon after the
// prefix, as skopeo does: a path cannot contain a colon, a tag can.
func parsePathRef(kind refKind, prefix, ref string) (*refSpec, error) {
	rest := strings.TrimPrefix(ref, prefix)
	p, tag, _ := strings.Cut(rest, ":")
	if p == "" {
		return nil, errorf(ErrBadReference, "parsing image reference %q: no path after %q", ref, prefix)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, errorf(ErrBadReference, "parsing image reference %q: %v", ref, err)
	}
	norm := prefix + abs
	if tag != "" {
		norm += ":" + tag
	}
	return &refSpec{kind: kind, path: abs, tag: tag, normalized: norm}, nil
}

func (r *refSpec) String() string { return r.normalized }

var _ fmt.Stringer = (*refSpec)(nil)

// badRefReason keeps go-containerregistry's explanation when it has one
// beyond echoing the input.
func badRefReason(err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, "could not parse reference") {
		return "not a valid reference"
	}
	return msg
}
