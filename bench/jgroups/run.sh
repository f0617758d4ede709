#!/usr/bin/env bash
# run.sh: the JGroups peer of the group benchmark (issue 4). Starts three JVMs on
# 127.0.0.1 forming one group over TCP, runs every (order, size, pattern) case and
# prints one JSON line per case on stdout. Progress and diagnostics go to stderr.
# See README.md. Installs nothing.
set -euo pipefail

usage() {
	cat >&2 <<'EOF'
usage: bench/jgroups/run.sh [flags]
  --duration SEC      seconds per measured case (default 10)
  --warmup SEC        unreported JIT warm-up case before each order's cases (default 2; 0 = none)
  --sizes LIST        message sizes in bytes (default 64,1024,8192)
  --orders LIST       total, fifo or both (default total,fifo)
  --patterns LIST     sender patterns for total order: one, all or both (default one,all)
  --base-port PORT    TCP ports PORT..PORT+2 on 127.0.0.1 (default 7850)
  --view-timeout SEC  give up if the group of three does not form (default 60)
  --keep-logs         keep the temp dir with the JVM logs
Environment: JGROUPS_JAR (default /usr/share/java/jgroups.jar), JAVA_OPTS (extra JVM flags).
The "total" order runs one sender and all senders; "fifo" runs one sender.
EOF
	exit 2
}

duration=10
warmup=2
sizes=64,1024,8192
orders=total,fifo
patterns=one,all
base_port=7850
view_timeout=60
keep_logs=0
while [ $# -gt 0 ]; do
	case "$1" in
	--duration) duration=${2:?}; shift 2 ;;
	--warmup) warmup=${2:?}; shift 2 ;;
	--sizes) sizes=${2:?}; shift 2 ;;
	--orders) orders=${2:?}; shift 2 ;;
	--patterns) patterns=${2:?}; shift 2 ;;
	--base-port) base_port=${2:?}; shift 2 ;;
	--view-timeout) view_timeout=${2:?}; shift 2 ;;
	--keep-logs) keep_logs=1; shift ;;
	-h | --help) usage ;;
	*) echo "run.sh: unknown flag $1" >&2; usage ;;
	esac
done
for v in "$duration" "$warmup" "$base_port" "$view_timeout"; do
	case "$v" in '' | *[!0-9]*) echo "run.sh: not a whole number: '$v'" >&2; exit 2 ;; esac
done
[ "$duration" -gt 0 ] || { echo "run.sh: --duration must be > 0" >&2; exit 2; }
case "$sizes" in '' | *[!0-9,]*) echo "run.sh: --sizes must be like 64,1024,8192" >&2; exit 2 ;; esac
case "$patterns" in one | all | one,all | all,one) ;; *) echo "run.sh: --patterns must be one, all or one,all" >&2; exit 2 ;; esac

die() {
	echo "run.sh: FAILED: $*" >&2
	exit 1
}

here=$(cd "$(dirname "$0")" && pwd)
jar=${JGROUPS_JAR:-/usr/share/java/jgroups.jar}
missing=""
command -v java >/dev/null 2>&1 || missing="$missing java"
command -v javac >/dev/null 2>&1 || missing="$missing javac"
[ -r "$jar" ] || missing="$missing $jar"
if [ -n "$missing" ]; then
	echo "run.sh: missing:$missing" >&2
	echo "run.sh: install with: apt-get install -y default-jdk-headless libjgroups-java" >&2
	echo "run.sh: (or point JGROUPS_JAR at a JGroups 2.12 jar)" >&2
	exit 1
fi

# Two runs at once would collide on the ports (and measure each other): take turns.
if command -v flock >/dev/null 2>&1; then
	lock="${TMPDIR:-/tmp}/jgroups-bench-$base_port.lock"
	exec 9>>"$lock"
	if ! flock -n 9; then
		echo "run.sh: another run holds $lock; waiting up to 30 min" >&2
		flock -w 1800 9 || die "another run still holds $lock"
	fi
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/jgroups-bench.XXXXXX")
pids=()
cleanup() {
	local rc=$?
	for p in "${pids[@]}"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		[ -n "$p" ] && wait "$p" 2>/dev/null || true
	done
	if [ "$keep_logs" = 1 ] || [ "$rc" != 0 ]; then
		echo "run.sh: logs kept in $tmp" >&2
	else
		rm -rf "$tmp"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "run.sh: compiling into $tmp" >&2
javac -nowarn -cp "$jar" -d "$tmp/classes" "$here/Bench.java" >&2 || die "javac failed"

# The FIFO stack is the total-order stack without its SEQUENCER line.
cp "$here/stack.xml" "$tmp/total.xml"
seq_line='^[[:space:]]*<SEQUENCER/>[[:space:]]*$'
[ "$(grep -c "$seq_line" "$here/stack.xml")" = 1 ] || die "stack.xml must have exactly one <SEQUENCER/> line"
grep -v "$seq_line" "$here/stack.xml" >"$tmp/fifo.xml"
! grep -q '<SEQUENCER' "$tmp/fifo.xml" || die "could not strip SEQUENCER for the fifo stack"

hosts="127.0.0.1[$base_port],127.0.0.1[$((base_port + 1))],127.0.0.1[$((base_port + 2))]"
# shellcheck disable=SC2206 # JAVA_OPTS is meant to split into words
java_opts=(-Xmx512m -Xms128m -Djava.net.preferIPv4Stack=true -Djgroups.bind_addr=127.0.0.1
	-Dbench.hosts="$hosts" ${JAVA_OPTS:-})

# wait_for LOG PID PATTERN SECONDS: poll the log until the pattern shows, the JVM dies
# or the time is up.
wait_for() {
	local log=$1 pid=$2 pat=$3 secs=$4 i
	for ((i = 0; i < secs * 10; i++)); do
		grep -q "$pat" "$log" 2>/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

show_logs() {
	local f
	for f in "$tmp"/"$1"-*.log; do
		echo "----- $f (last 30 lines) -----" >&2
		tail -n 30 "$f" >&2 || true
	done
}

# run_order ORDER PATTERNS: one group of three JVMs running all cases of ORDER.
run_order() {
	local order=$1 patterns=$2 i pid log ncases deadline alive rc
	pids=()
	for i in 0 1 2; do
		log="$tmp/$order-$i.log"
		java "${java_opts[@]}" -Dbench.port=$((base_port + i)) -cp "$tmp/classes:$jar" Bench \
			"$tmp/$order.xml" "$order" "$((duration * 1000))" "$((warmup * 1000))" \
			"$sizes" "$patterns" "$((view_timeout * 1000))" >"$log" 2>&1 9>&- &
		pid=$!
		pids+=("$pid")
		# Start members one after the other so they join one group instead of forming
		# singletons that MERGE2 would only merge tens of seconds later.
		wait_for "$log" "$pid" '^CONNECTED' 60 || {
			show_logs "$order"
			die "$order: JVM $i did not connect (port $((base_port + i)) busy? see log)"
		}
	done
	for i in 0 1 2; do
		wait_for "$tmp/$order-$i.log" "${pids[$i]}" '^FORMED' "$view_timeout" || {
			show_logs "$order"
			die "$order: the view of three never formed at JVM $i within ${view_timeout}s"
		}
	done
	echo "run.sh: $order: group of three formed" >&2

	ncases=$(($(tr ',' '\n' <<<"$sizes" | grep -c .) * $(tr ',' '\n' <<<"$patterns" | grep -c .)))
	deadline=$((SECONDS + 120 + warmup + ncases * (duration + 30)))
	while :; do
		alive=0
		for i in 0 1 2; do
			pid=${pids[$i]}
			[ -n "$pid" ] || continue # already exited with status 0
			if kill -0 "$pid" 2>/dev/null; then
				alive=$((alive + 1))
				continue
			fi
			rc=0
			wait "$pid" || rc=$?
			if [ "$rc" != 0 ]; then
				show_logs "$order"
				die "$order: JVM $i exited with status $rc"
			fi
			pids[$i]=""
		done
		[ "$alive" = 0 ] && break
		[ "$SECONDS" -lt "$deadline" ] || {
			show_logs "$order"
			die "$order: cases did not finish in time"
		}
		sleep 0.5
	done
	pids=()
	# Rank 0's per-member detail of every case (a "bench: case" line and its
	# indented continuation lines).
	awk '/^bench: case/ { on = 1; print; next } on && /^  / { print; next } { on = 0 }' \
		"$tmp/$order-0.log" >&2
	grep -h 'WARNING' "$tmp/$order"-*.log >&2 || true
	local n
	n=$(grep -c '^{"system":"jgroups"' "$tmp/$order-0.log" || true)
	[ "$n" = "$ncases" ] || die "$order: expected $ncases result lines, got $n"
	grep '^{"system":"jgroups"' "$tmp/$order-0.log"
}

IFS=, read -r -a order_list <<<"$orders"
for o in "${order_list[@]}"; do
	case "$o" in
	total) run_order total "$patterns" ;;
	fifo) run_order fifo one ;;
	*) die "unknown order $o (total or fifo)" ;;
	esac
done
