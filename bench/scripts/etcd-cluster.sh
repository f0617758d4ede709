#!/usr/bin/env bash
# etcd-cluster.sh start|stop|status DIR
#
# Starts (or stops) a three-member etcd cluster on 127.0.0.1 for the benchmark:
# client ports 23791-23793, peer ports 23801-23803, member data in DIR/m1..m3,
# logs in DIR/m1.log.., pids in DIR/m1.pid... fsync stays on (etcd's default; we
# never pass --unsafe-no-fsync) so the comparison with chorus is at equal
# durability: a put is acknowledged after a majority has fsynced it.
#
# Needs /usr/bin/etcd (Debian: apt-get install -y etcd-server, 3.4.23) and curl.
# "start" returns once every member answers /health with "true" (or fails after
# ETCD_START_TIMEOUT_S seconds, default 30).
set -euo pipefail

usage() { echo "usage: $0 start|stop|status DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$2
ETCD=${ETCD:-/usr/bin/etcd}
timeout_s=${ETCD_START_TIMEOUT_S:-30}
n=3
cluster=""
for i in $(seq 1 $n); do
	cluster="${cluster:+$cluster,}m$i=http://127.0.0.1:$((23800 + i))"
done

healthy() { # member index
	curl -fsS --max-time 2 "http://127.0.0.1:$((23790 + $1))/health" 2>/dev/null | grep -q '"health":"true"'
}

start() {
	command -v "$ETCD" >/dev/null || { echo "etcd-cluster: $ETCD not found (apt-get install -y etcd-server)" >&2; exit 1; }
	mkdir -p "$dir"
	for i in $(seq 1 $n); do
		if [ -f "$dir/m$i.pid" ] && kill -0 "$(cat "$dir/m$i.pid")" 2>/dev/null; then
			echo "etcd-cluster: member m$i already running (pid $(cat "$dir/m$i.pid"))" >&2
			exit 1
		fi
	done
	state=new
	# A data dir from an earlier run is reused as an existing cluster.
	[ -d "$dir/m1/member" ] && state=existing
	for i in $(seq 1 $n); do
		cport=$((23790 + i))
		pport=$((23800 + i))
		"$ETCD" --name "m$i" --data-dir "$dir/m$i" \
			--listen-client-urls "http://127.0.0.1:$cport" \
			--advertise-client-urls "http://127.0.0.1:$cport" \
			--listen-peer-urls "http://127.0.0.1:$pport" \
			--initial-advertise-peer-urls "http://127.0.0.1:$pport" \
			--initial-cluster "$cluster" \
			--initial-cluster-token chorus-bench \
			--initial-cluster-state "$state" \
			--logger zap --log-outputs stderr \
			>"$dir/m$i.log" 2>&1 &
		echo $! >"$dir/m$i.pid"
	done
	deadline=$((SECONDS + timeout_s))
	for i in $(seq 1 $n); do
		until healthy "$i"; do
			if ! kill -0 "$(cat "$dir/m$i.pid")" 2>/dev/null; then
				echo "etcd-cluster: member m$i exited; tail of $dir/m$i.log:" >&2
				tail -20 "$dir/m$i.log" >&2
				stop
				exit 1
			fi
			if [ $SECONDS -ge $deadline ]; then
				echo "etcd-cluster: member m$i not healthy after ${timeout_s}s" >&2
				stop
				exit 1
			fi
			sleep 0.2
		done
	done
	echo "etcd-cluster: 3 members healthy; endpoints 127.0.0.1:23791,127.0.0.1:23792,127.0.0.1:23793; pids $(cat "$dir"/m*.pid | tr '\n' ' ')"
}

stop() {
	for i in $(seq 1 $n); do
		f="$dir/m$i.pid"
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null || true
			for _ in $(seq 1 50); do
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
stop) stop; echo "etcd-cluster: stopped" ;;
status) status ;;
*) usage ;;
esac
