#!/usr/bin/env bash
# Runs every test of ocifs the way CI does: installs the host tools the
# tests use (as root, only what is missing), starts one real registry on a
# loopback port for the whole run, and runs vet, a gofmt check and
# `go test -race` in strict mode (a missing prerequisite fails a test
# instead of skipping it). Called by `make test` and, through it, .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
# go needs a home for its caches; CI may start with a bare environment.
if [ -z "${HOME:-}" ]; then
	HOME=$(getent passwd "$(id -u)" | cut -d: -f6)
	export HOME
fi

# tool on PATH -> Debian package providing it
declare -A pkgs=(
	[docker-registry]=docker-registry
	[skopeo]=skopeo
	[umoci]=umoci
	[mkfs.ext4]=e2fsprogs
	[debugfs]=e2fsprogs
	[e2fsck]=e2fsprogs
	[fusermount3]=fuse3
	[setfattr]=attr
	[debootstrap]=debootstrap
	[pigz]=pigz
	[strace]=strace
	[gcc]=gcc # cgo, which go test -race needs
)

install_prerequisites() {
	local missing=() tool
	for tool in "${!pkgs[@]}"; do
		command -v "$tool" >/dev/null 2>&1 || missing+=("${pkgs[$tool]}")
	done
	# e2fsprogs must be new enough for mkfs.ext4 -d
	if command -v mkfs.ext4 >/dev/null 2>&1; then
		local usage
		usage=$(mkfs.ext4 2>&1 || true)
		[[ "$usage" == *"-d "* ]] || missing+=(e2fsprogs)
	fi
	if [ ${#missing[@]} -eq 0 ]; then
		return
	fi
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	if [ "$(id -u)" -ne 0 ]; then
		echo "test.sh: missing packages: ${missing[*]}" >&2
		echo "hint: run 'sudo make test' once, or: sudo apt-get install -y ${missing[*]}" >&2
		exit 1
	fi
	echo "test.sh: installing ${missing[*]}" >&2
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

ensure_fuse_device() {
	[ -e /dev/fuse ] && return
	[ "$(id -u)" -eq 0 ] || return
	modprobe fuse 2>/dev/null || true
	[ -e /dev/fuse ] || mknod -m 0600 /dev/fuse c 10 229 || true
}

source bench/registry.sh
die() { echo "test.sh: $*" >&2; exit 1; }

# start_test_registry: one registry for the whole run (bench/registry.sh),
# its address in OCIFS_TEST_REGISTRY for internal/testregistry.
start_test_registry() {
	regdir=$(mktemp -d -t ocifs-registry.XXXXXX)
	start_registry "$regdir"
	export OCIFS_TEST_REGISTRY="127.0.0.1:$port"
	echo "test.sh: registry on $OCIFS_TEST_REGISTRY (pid $regpid)" >&2
}

stop_registry() {
	if [ -n "${regpid:-}" ]; then
		kill "$regpid" 2>/dev/null || true
		wait "$regpid" 2>/dev/null || true
	fi
	[ -n "${regdir:-}" ] && rm -rf "$regdir"
}

regpid=""
regdir=""
trap stop_registry EXIT
trap 'exit 130' INT TERM

install_prerequisites
ensure_fuse_device
start_test_registry
export OCIFS_TEST_STRICT=1

echo "test.sh: go vet ./..." >&2
go vet ./...

echo "test.sh: gofmt check" >&2
mapfile -t gofiles < <(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './build/*')
unformatted=""
if [ ${#gofiles[@]} -gt 0 ]; then
	unformatted=$(gofmt -l "${gofiles[@]}")
fi
if [ -n "$unformatted" ]; then
	echo "test.sh: not gofmt-ed:" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "test.sh: go test -race ./..." >&2
go test -race -timeout 40m ${OCIFS_GO_TEST_FLAGS:-} ./...
