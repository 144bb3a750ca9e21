#!/usr/bin/env bash
# bench/run.sh: ocifs against the pipelines users run today, on one
# machine, in one run (issue 6). Builds a Debian bookworm minbase root
# filesystem with debootstrap (mirror taken from this machine's apt
# configuration), pushes it as 5 layers to a docker-registry on loopback,
# then measures, interleaved and repeated (medians reported):
#   - the floor: gzip -dc of every layer; mkfs.ext4 -d over the extracted tree;
#   - the extraction pipeline: crane export | tar -x --numeric-owner, then
#     mkfs.ext4 -d with the same options ocifs uses;
#   - ocifs build cold (empty cache) and warm; warm ocifs mount to first stat;
#   - find -printf and tar | wc -c over the mount and over the extracted
#     tree, kernel caches dropped before each; the server's peak RSS; cache
#     disk use.
# Writes Markdown to --out (default WORK/report.md) and prints it.
#
# Usage: sudo bench/run.sh [--repeat N] [--work DIR] [--rootfs DIR] [--out FILE] [--keep]
#   --rootfs DIR  reuse a debootstrapped tree instead of running debootstrap
#   --keep        leave WORK behind (default: removed, except the report)
# Needs root (debootstrap, drop_caches), debootstrap, docker-registry,
# e2fsprogs, fuse3, go; crane is built from the module version in go.mod.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

# abspath P: P made absolute against the directory run.sh was started from.
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$caller/$1" ;; esac; }

repeat=5 work="" rootfs="" out="" keep=0
while [ $# -gt 0 ]; do
	case "$1" in
	--repeat) repeat=$2; shift 2 ;;
	--work) work=$(abspath "$2"); shift 2 ;;
	--rootfs) rootfs=$(abspath "$2"); shift 2 ;;
	--out) out=$(abspath "$2"); shift 2 ;;
	--keep) keep=1; shift ;;
	-h|--help) sed -n '2,22p' "$0"; exit 0 ;;
	*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done

die() { echo "run.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap and dropping kernel caches need it)"
for t in debootstrap docker-registry mkfs.ext4 e2fsck debugfs fusermount3 go tar gzip; do
	command -v "$t" >/dev/null || die "missing $t (apt-get install debootstrap docker-registry e2fsprogs fuse3 tar gzip)"
done

# mirror prints the first Debian mirror URI of the apt configuration.
mirror() {
	local f m
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -e "$f" ] || continue
		m=$(awk '/^URIs:/{print $2; exit}' "$f")
		if [ -n "$m" ]; then
			echo "$m"
			return
		fi
	done
	if [ -e /etc/apt/sources.list ]; then
		awk '$1=="deb"{for(i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list
	fi
}

work=${work:-$(mktemp -d /var/tmp/ocifs-bench.XXXXXX)}
mkdir -p "$work/bin"
out=${out:-$work/report.md}
regpid=""
cleanup() {
	if [ -n "$regpid" ]; then
		kill "$regpid" 2>/dev/null || true
		wait "$regpid" 2>/dev/null || true
	fi
	if mountpoint -q "$work/mnt" 2>/dev/null; then "$work/bin/ocifs" umount "$work/mnt" || true; fi
	if [ "$keep" -eq 0 ]; then
		find "$work" -mindepth 1 -maxdepth 1 ! -name "$(basename "$out")" -exec rm -rf {} +
	fi
}
trap cleanup EXIT

echo "run.sh: building ocifs, ocifsbench and crane into $work/bin" >&2
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit+dirty"
go build -ldflags "-X main.version=$commit" -o "$work/bin/ocifs" ./cmd/ocifs
go build -o "$work/bin/ocifsbench" ./bench/ocifsbench
crane_version=$(go list -m -f '{{.Version}}' github.com/google/go-containerregistry)
# Outside the module, so that go.mod and go.sum stay untouched.
(cd "$work/bin" && GOBIN="$work/bin" go install "github.com/google/go-containerregistry/cmd/crane@$crane_version")

if [ -z "$rootfs" ]; then
	m=$(mirror)
	[ -n "$m" ] || die "no Debian mirror in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list"
	rootfs=$work/rootfs
	echo "run.sh: debootstrap --variant=minbase bookworm (mirror from the apt configuration)" >&2
	debootstrap --variant=minbase bookworm "$rootfs" "$m" >"$work/debootstrap.log" 2>&1 ||
		{ tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
fi

# A loopback registry of our own, on a random free port (a few tries).
source bench/registry.sh
start_registry "$work/registry"

ref=127.0.0.1:$port/bench/debian:bookworm
echo "run.sh: pushing $rootfs as $ref" >&2
"$work/bin/ocifsbench" push "$rootfs" "$ref" >&2

echo "run.sh: measuring, $repeat repetitions (load now: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
"$work/bin/ocifsbench" measure -ocifs "$work/bin/ocifs" -crane "$work/bin/crane" -ref "$ref" \
	-work "$work" -repeat "$repeat" -commit "$commit" -out "$out"
cat "$out"
echo "run.sh: report in $out" >&2
