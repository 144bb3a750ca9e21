package cache

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// HostPlatform is the platform images are pulled for by default:
// runtime.GOOS/GOARCH, with the ARM variant this binary was built for.
func HostPlatform() v1.Platform {
	p := v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	if runtime.GOARCH == "arm" {
		p.Variant = "v7"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "GOARM" && s.Value != "" {
					p.Variant = "v" + strings.SplitN(s.Value, ",", 2)[0]
				}
			}
		}
	}
	return p
}

// ParsePlatform parses os/arch[/variant].
func ParsePlatform(s string) (*v1.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return nil, fmt.Errorf("parsing platform %q: want os/arch[/variant], e.g. linux/arm64", s)
	}
	p := &v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// platformKey is the os/arch[/variant] spelling of p, with arm64's
// default variant left out.
func platformKey(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if v := normVariant(p.Architecture, p.Variant); v != "" {
		s += "/" + v
	}
	return s
}

// normVariant makes equivalent variant spellings equal: arm64's v8 is its
// default, as is arm's v7 when unstated in a manifest.
func normVariant(arch, variant string) string {
	if arch == "arm64" && variant == "v8" {
		return ""
	}
	return variant
}

// platformMatches reports whether an image for have serves want. An
// unstated wanted variant accepts any.
func platformMatches(have, want v1.Platform) bool {
	if have.OS != want.OS || have.Architecture != want.Architecture {
		return false
	}
	if want.Variant == "" {
		return true
	}
	return normVariant(have.Architecture, have.Variant) == normVariant(want.Architecture, want.Variant)
}

// isAttestation reports whether an index entry is a BuildKit attestation
// (provenance, SBOM) rather than a runnable image.
func isAttestation(d v1.Descriptor) bool {
	if d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
		return true
	}
	return d.Platform != nil && d.Platform.OS == "unknown" && d.Platform.Architecture == "unknown"
}

// choosePlatform picks want's manifest from an index, skipping
// attestations. An entry without a platform is taken only when it is the
// index's one image.
func choosePlatform(im *v1.IndexManifest, want v1.Platform) (v1.Descriptor, error) {
	var avail []string
	var unlabelled []v1.Descriptor
	for _, d := range im.Manifests {
		if isAttestation(d) || !(d.MediaType.IsImage() || d.MediaType.IsIndex() || d.MediaType == "") {
			continue
		}
		if d.Platform == nil {
			unlabelled = append(unlabelled, d)
			continue
		}
		if platformMatches(*d.Platform, want) {
			return d, nil
		}
		avail = append(avail, platformKey(*d.Platform))
	}
	if len(avail) == 0 && len(unlabelled) == 1 {
		return unlabelled[0], nil
	}
	sort.Strings(avail)
	if len(avail) == 0 {
		return v1.Descriptor{}, errorf(ErrNoPlatform, "no image for %s in the index (it lists no platforms)", platformKey(want))
	}
	return v1.Descriptor{}, errorf(ErrNoPlatform, "no image for %s; available: %s", platformKey(want), strings.Join(avail, ", "))
}

// configPlatform is the platform an image's config declares.
func configPlatform(cf *v1.ConfigFile) v1.Platform {
	return v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant, OSVersion: cf.OSVersion}
}
