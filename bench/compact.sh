#!/usr/bin/env bash
# bench/compact.sh: the cache modes side by side (issue 7). Pushes a
# debootstrapped tree as bench/run.sh does (ocifsbench push: 5 gzip
# layers), then, for --cache-mode compact and unpacked, each in its own
# cache directory:
#   - a cold pull (timed) and the cache's disk use by kind of file;
#   - cold `ocifs build` (empty cache, pull included) and warm `ocifs
#     build`, repeated, the modes interleaved (order reversed every other
#     repetition);
#   - random 4 KiB reads at random files (each file opened once, kernel
#     caches dropped first) through a mount, and in process through the
#     cache (compactbench), median and p99;
#   - a full read of the mount (tar | wc -c, caches dropped first) and the
#     mount server's peak RSS after it.
# Prints a Markdown report.
#
# Usage: sudo bench/compact.sh --rootfs DIR [--repeat N] [--reads N] [--work DIR]
#   --rootfs DIR  a debootstrapped tree (bench/run.sh --keep leaves one in WORK/rootfs)
# Needs root (dropping kernel caches), docker-registry, e2fsprogs, fuse3, go.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

repeat=5 reads=2000 work="" rootfs=""
while [ $# -gt 0 ]; do
	case "$1" in
	--repeat) repeat=$2; shift 2 ;;
	--reads) reads=$2; shift 2 ;;
	--work) work=$2; shift 2 ;;
	--rootfs) rootfs=$2; shift 2 ;;
	-h|--help) sed -n '2,17p' "$0"; exit 0 ;;
	*) echo "compact.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
die() { echo "compact.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (dropping kernel caches needs it)"
[ -n "$rootfs" ] && [ -d "$rootfs" ] || die "--rootfs DIR is required (a debootstrapped tree)"
for t in docker-registry mkfs.ext4 fusermount3 go; do
	command -v "$t" >/dev/null || die "missing $t"
done
work=${work:-$(mktemp -d /var/tmp/ocifs-compact.XXXXXX)}
mkdir -p "$work/bin" "$work/mnt"
regpid=""
cleanup() {
	mountpoint -q "$work/mnt" 2>/dev/null && "$work/bin/ocifs" umount "$work/mnt" || true
	[ -n "$regpid" ] && { kill "$regpid" 2>/dev/null || true; wait "$regpid" 2>/dev/null || true; }
}
trap cleanup EXIT

go build -o "$work/bin/ocifs" ./cmd/ocifs
go build -o "$work/bin/ocifsbench" ./bench/ocifsbench
go build -o "$work/bin/compactbench" ./bench/compactbench
commit=$(git rev-parse --short HEAD)

source bench/registry.sh
start_registry "$work/registry"
ref=127.0.0.1:$port/bench/debian:bookworm
"$work/bin/ocifsbench" push "$rootfs" "$ref" >&2

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; sleep 0.5; }
ocifs() { local mode=$1; shift; "$work/bin/ocifs" --cache-dir "$work/cache-$mode" --cache-mode "$mode" "$@"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
range() { sort -g | awk 'NR==1{lo=$1} {hi=$1} END {print lo "–" hi}'; }

declare -A pull disk
for mode in compact unpacked; do
	rm -rf "$work/cache-$mode"
	drop
	t=$(now); ocifs "$mode" pull "$ref"; pull[$mode]=$(since "$t")
	ocifs "$mode" build "$ref" "$work/first.ext4" && rm -f "$work/first.ext4" # saves the merged tree
	disk[$mode]=$(ocifs "$mode" cache ls | tail -1)
done

: >"$work/builds"
for i in $(seq "$repeat"); do
	order="compact unpacked"; [ $((i % 2)) -eq 0 ] && order="unpacked compact"
	for mode in $order; do
		rm -rf "$work/cold-$mode"
		t=$(now); "$work/bin/ocifs" --cache-dir "$work/cold-$mode" --cache-mode "$mode" build "$ref" "$work/cold.ext4"
		echo "cold-$mode $(since "$t")" >>"$work/builds"
		rm -rf "$work/cold-$mode" "$work/cold.ext4"
		t=$(now); ocifs "$mode" build "$ref" "$work/warm.ext4"; echo "$mode $(since "$t")" >>"$work/builds"
		sha256sum "$work/warm.ext4" | cut -d' ' -f1 >"$work/sum-$mode"
		rm -f "$work/warm.ext4"
	done
done
cmp -s "$work/sum-compact" "$work/sum-unpacked" && same=yes || same=NO

declare -A mreads creads fullread hwm
for mode in compact unpacked; do
	ocifs "$mode" mount "$ref" "$work/mnt"
	drop
	mreads[$mode]=$("$work/bin/compactbench" mount -n "$reads" "$work/mnt")
	"$work/bin/ocifs" umount "$work/mnt"
	ocifs "$mode" mount "$ref" "$work/mnt"
	drop
	t=$(now); tar -cf - -C "$work/mnt" . | wc -c >/dev/null; fullread[$mode]=$(since "$t")
	pid=$(pgrep -f "__mount-server.*$work/mnt" | head -1)
	hwm[$mode]=$(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' "/proc/$pid/status")
	"$work/bin/ocifs" umount "$work/mnt"
	drop
	creads[$mode]=$("$work/bin/compactbench" cache -n "$reads" -mode "$mode" -cache "$work/cache-$mode" "$ref")
done

b() { grep "^$1 " "$work/builds" | cut -d' ' -f2; }
cat <<REPORT
### Cache modes: compact vs unpacked ($(date -u '+%Y-%m-%d %H:%M') UTC, commit $commit, $repeat repetitions)

Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs.

| | compact | unpacked |
|---|---|---|
| cold pull (s) | ${pull[compact]} | ${pull[unpacked]} |
| cold build, median (s) [range] | $(b cold-compact | median) [$(b cold-compact | range)] | $(b cold-unpacked | median) [$(b cold-unpacked | range)] |
| warm build, median (s) [range] | $(b compact | median) [$(b compact | range)] | $(b unpacked | median) [$(b unpacked | range)] |
| random 4 KiB reads via mount | ${mreads[compact]} | ${mreads[unpacked]} |
| random 4 KiB reads in process | ${creads[compact]} | ${creads[unpacked]} |
| full read of the mount, tar \| wc -c (s) | ${fullread[compact]} | ${fullread[unpacked]} |
| mount server VmHWM after the full read | ${hwm[compact]} | ${hwm[unpacked]} |

ext4 images identical across modes: $same

Disk, compact: ${disk[compact]}

Disk, unpacked: ${disk[unpacked]}
REPORT
