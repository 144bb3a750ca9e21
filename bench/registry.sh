# bench/registry.sh: the loopback docker-registry start, sourced by
# bench/run.sh, bench/compact.sh and .ci/test.sh.
# start_registry DIR: serves a docker-registry on a random loopback port
# with its storage, config and log in DIR (a few tries; deletes enabled,
# which some tests use); sets port and regpid (the caller kills it, e.g.
# in its EXIT trap). Dies after 5 failed tries, printing the registry's
# log. Needs die(); probes with bash's /dev/tcp, so no curl.
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
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
CONF
	docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
	regpid=$!
	for _ in $(seq 100); do
		registry_up "$port" && return 0
		kill -0 "$regpid" 2>/dev/null || break
		sleep 0.1
	done
	kill "$regpid" 2>/dev/null || true
	wait "$regpid" 2>/dev/null || true
	regpid=""
	return 1
}

# registry_up PORT: true once the registry answers GET /v2/ with 200.
# (A subshell, so that a refused connection's message and the redirections
# stay out of the caller's shell.)
registry_up() {
	(
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf 'GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
		read -r -t 2 _ status _ <&3 || exit 1
		[ "$status" = 200 ]
	) 2>/dev/null
}
