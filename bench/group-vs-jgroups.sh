#!/usr/bin/env bash
# group-vs-jgroups.sh: the group ordering benchmark of issue 4, chorus and JGroups back
# to back on this machine with the same sizes, durations and warm-up, and the ratio
# chorus/jgroups of ordered messages per second for every row both measure.
#
# chorus: `chorus bench group` (internal/groupbench), three processes on 127.0.0.1.
# jgroups: bench/jgroups/run.sh, three JVMs on 127.0.0.1 (needs default-jdk-headless and
# libjgroups-java). Both report msgs/s as the minimum over members of deliveries per
# second, and p50/p99 latency as send -> the sender's own delivery (the ratio and the
# like-for-like latency). Both also report p50_all_ms/p99_all_ms on the wall clock:
# chorus as the per-message maximum over members (sampled), JGroups as the slowest
# member's quantile (bench/jgroups/README.md), which can be lower.
# JGroups runs total order with one and all senders and FIFO with one sender; chorus also
# runs FIFO with all senders and safe order, shown without a ratio.
set -euo pipefail

usage() {
	cat >&2 <<'EOF2'
usage: bench/group-vs-jgroups.sh [flags]
  --duration SEC   seconds per measured case (default 10)
  --warmup SEC     unreported warm-up before each case (chorus) / each order (jgroups) (default 2)
  --sizes LIST     message sizes in bytes (default 64,1024,8192)
  --out DIR        keep chorus.jsonl, jgroups.jsonl and the table here (default: a temp dir, printed)
  --chorus-args "ARGS"  extra flags for `chorus bench group` (e.g. "--send-window 4096")
  --skip-jgroups   only run chorus (no ratio)
EOF2
	exit 2
}

duration=10
warmup=2
sizes=64,1024,8192
out=""
chorus_args=""
skip_jgroups=0
while [ $# -gt 0 ]; do
	case "$1" in
	--duration) duration=${2:?}; shift 2 ;;
	--warmup) warmup=${2:?}; shift 2 ;;
	--sizes) sizes=${2:?}; shift 2 ;;
	--out) out=${2:?}; shift 2 ;;
	--chorus-args) chorus_args=${2?}; shift 2 ;;
	--skip-jgroups) skip_jgroups=1; shift ;;
	-h | --help) usage ;;
	*) echo "group-vs-jgroups.sh: unknown flag $1" >&2; usage ;;
	esac
done
for v in "$duration" "$warmup"; do
	case "$v" in '' | *[!0-9]*) echo "group-vs-jgroups.sh: not a whole number: '$v'" >&2; exit 2 ;; esac
done
command -v jq >/dev/null 2>&1 || { echo "group-vs-jgroups.sh: needs jq (apt-get install -y jq)" >&2; exit 1; }
command -v go >/dev/null 2>&1 || { echo "group-vs-jgroups.sh: needs go" >&2; exit 1; }

root=$(cd "$(dirname "$0")/.." && pwd)
[ -n "$out" ] || out=$(mktemp -d "${TMPDIR:-/tmp}/group-vs-jgroups.XXXXXX")
mkdir -p "$out"
echo "group-vs-jgroups.sh: results in $out" >&2

(cd "$root" && go build -o "$out/chorus" ./cmd/chorus)
{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "machine: $(nproc) cores, $(uname -sr)"
	echo "duration: ${duration}s per case, warm-up ${warmup}s, sizes $sizes, chorus args: ${chorus_args:-none}"
} >"$out/header.txt"

echo "group-vs-jgroups.sh: chorus" >&2
# shellcheck disable=SC2086 # chorus_args is meant to split into words
"$out/chorus" bench group -o json --duration "${duration}s" --warmup "${warmup}s" --sizes "$sizes" \
	--orders total,fifo,safe --senders one,all $chorus_args >"$out/chorus.jsonl"

: >"$out/jgroups.jsonl"
if [ "$skip_jgroups" = 0 ]; then
	echo "group-vs-jgroups.sh: jgroups" >&2
	"$root/bench/jgroups/run.sh" --duration "$duration" --warmup "$warmup" --sizes "$sizes" >"$out/jgroups.jsonl"
fi

# One row per chorus case, with the JGroups row of the same (order, size, senders) if any.
jq -rn --slurpfile c "$out/chorus.jsonl" --slurpfile j "$out/jgroups.jsonl" '
	def f(x; n): if x == null then "-" else (x * pow(10; n) | round / pow(10; n) | tostring) end;
	($j | map({key: "\(.order)/\(.size)/\(.senders)", value: .}) | from_entries) as $jg
	| (["order", "size", "senders", "chorus msgs/s", "jgroups msgs/s", "ratio",
		"chorus MB/s", "jgroups MB/s", "chorus p50/p99 ms", "jgroups p50/p99 ms", "chorus all p50/p99 ms", "jgroups all p50/p99 ms"] | @tsv),
	($c[] | . as $r | $jg["\($r.order)/\($r.size)/\($r.senders)"] as $g
		| [$r.order, $r.size, $r.senders, f($r.msgs_per_s; 0), f($g.msgs_per_s; 0),
			(if $g == null or $g.msgs_per_s == 0 then "-" else f($r.msgs_per_s / $g.msgs_per_s; 2) end),
			f($r.mb_per_s; 2), f($g.mb_per_s; 2),
			"\(f($r.p50_ms; 3))/\(f($r.p99_ms; 3))",
			(if $g == null then "-" else "\(f($g.p50_ms; 3))/\(f($g.p99_ms; 3))" end),
			"\(f($r.p50_all_ms; 3))/\(f($r.p99_all_ms; 3))",
			(if $g == null then "-" else "\(f($g.p50_all_ms; 3))/\(f($g.p99_all_ms; 3))" end)] | @tsv)
' | column -t -s $'\t' >"$out/table.txt"
cat "$out/header.txt" "$out/table.txt"
