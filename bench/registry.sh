# bench/registry.sh: sourced by bench/run.sh and bench/compact.sh.
# start_registry DIR: serves a docker-registry on a random loopback port
# with its storage, config and log in DIR (a few tries); sets port and
# regpid (the caller's EXIT trap kills it). Dies after 5 failed tries,
# printing the registry's log. Needs die() and curl.
start_registry() {
	local dir=$1 attempt
	mkdir -p "$dir"
	for attempt in 1 2 3 4 5; do
		try_registry "$dir" && return 0
	done
	cat "$dir/log" >&2
	die "docker-registry did not start"
}

try_registry() {
	local dir=$1
	port=$((20000 + RANDOM % 30000))
	cat >"$dir/config.yml" <<CONF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
http:
  addr: 127.0.0.1:$port
CONF
	docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
	regpid=$!
	for _ in $(seq 100); do
		curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && return 0
		kill -0 "$regpid" 2>/dev/null || break
		sleep 0.1
	done
	kill "$regpid" 2>/dev/null || true
	wait "$regpid" 2>/dev/null || true
	regpid=""
	return 1
}
