#!/usr/bin/env bash
# chorus-cluster.sh start|stop|status DIR
#
# Builds chorus from this checkout (../.. of this script) into DIR/chorus and
# starts (or stops) a three-member cluster on 127.0.0.1 for the benchmark:
# HTTP ports 24791-24793, peer ports 24801-24803, member data in DIR/m1..m3,
# logs in DIR/m1.log.., pids in DIR/m1.pid... The servers fsync before a
# majority acknowledges (chorus's only mode), as etcd does with its defaults.
#
# "start" returns once every member answers /v1/health with "ok" (it knows a
# leader), or fails after CHORUS_START_TIMEOUT_S seconds (default 60).
# Extra server flags can be passed in CHORUS_SERVER_FLAGS.
set -euo pipefail

usage() { echo "usage: $0 start|stop|status DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
timeout_s=${CHORUS_START_TIMEOUT_S:-60}
n=3
peers=""
http_peers=""
for i in $(seq 1 $n); do
	peers="${peers:+$peers,}$i=127.0.0.1:$((24800 + i))"
	http_peers="${http_peers:+$http_peers,}$i=127.0.0.1:$((24790 + i))"
done

healthy() { # member index
	curl -fsS --max-time 2 "http://127.0.0.1:$((24790 + $1))/v1/health" 2>/dev/null | grep -q '"status":"ok"'
}

start() {
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	for i in $(seq 1 $n); do
		if [ -f "$dir/m$i.pid" ] && kill -0 "$(cat "$dir/m$i.pid")" 2>/dev/null; then
			echo "chorus-cluster: member m$i already running (pid $(cat "$dir/m$i.pid"))" >&2
			exit 1
		fi
	done
	(cd "$root" && go build -o "$dir/chorus" ./cmd/chorus)
	for i in $(seq 1 $n); do
		# shellcheck disable=SC2086 # CHORUS_SERVER_FLAGS is a list of flags
		"$dir/chorus" server --id "$i" --cluster-id 4242 --data-dir "$dir/m$i" --bootstrap \
			--listen-peer "127.0.0.1:$((24800 + i))" --listen-http "127.0.0.1:$((24790 + i))" \
			--peers "$peers" --http-peers "$http_peers" \
			${CHORUS_SERVER_FLAGS:-} \
			>"$dir/m$i.log" 2>&1 &
		echo $! >"$dir/m$i.pid"
	done
	deadline=$((SECONDS + timeout_s))
	for i in $(seq 1 $n); do
		until healthy "$i"; do
			if ! kill -0 "$(cat "$dir/m$i.pid")" 2>/dev/null; then
				echo "chorus-cluster: member m$i exited; tail of $dir/m$i.log:" >&2
				tail -20 "$dir/m$i.log" >&2
				stop
				exit 1
			fi
			if [ $SECONDS -ge $deadline ]; then
				echo "chorus-cluster: member m$i not healthy after ${timeout_s}s; tail of $dir/m$i.log:" >&2
				tail -20 "$dir/m$i.log" >&2
				stop
				exit 1
			fi
			sleep 0.2
		done
	done
	echo "chorus-cluster: 3 members healthy; endpoints 127.0.0.1:24791,127.0.0.1:24792,127.0.0.1:24793; pids $(cat "$dir"/m*.pid | tr '\n' ' ')"
}

stop() {
	for i in $(seq 1 $n); do
		f="$dir/m$i.pid"
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null || true
			for _ in $(seq 1 100); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
		fi
		rm -f "$f"
	done
}

status() {
	for i in $(seq 1 $n); do
		if healthy "$i"; then echo "m$i healthy"; else echo "m$i down"; fi
	done
}

case "$cmd" in
start) start ;;
stop) stop; echo "chorus-cluster: stopped" ;;
status) status ;;
*) usage ;;
esac
