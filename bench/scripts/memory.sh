#!/usr/bin/env bash
# memory.sh [KEYS]
#
# The memory mode: for each system in turn, starts a fresh three-member
# cluster, loads KEYS keys (default 1,000,000) of 256 bytes through loadgen
# --mode memory (batched transactions of 128 puts), prints each member's
# resident set (VmRSS, before and after the load, and the peak VmHWM) and
# data directory size, and stops the cluster. JSON reports go to
# $BENCH_DIR/memory-etcd.json and memory-chorus.json.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
keys=${1:-1000000}
dir=${BENCH_DIR:-$(mktemp -d /tmp/chorus-bench-mem.XXXXXX)}
mkdir -p "$dir"
cleanup() {
	"$here/chorus-cluster.sh" stop "$dir/chorus" >/dev/null 2>&1 || true
	"$here/etcd-cluster.sh" stop "$dir/etcd" >/dev/null 2>&1 || true
}
trap cleanup EXIT
(cd "$here/.." && go build -o "$dir/loadgen" ./cmd/loadgen)
"$here/etcd-cluster.sh" start "$dir/etcd"
"$dir/loadgen" --mode memory --system etcd --keys "$keys" --pid-dir "$dir/etcd" --json "$dir/memory-etcd.json"
"$here/etcd-cluster.sh" stop "$dir/etcd"
"$here/chorus-cluster.sh" start "$dir/chorus"
"$dir/loadgen" --mode memory --system chorus --keys "$keys" --pid-dir "$dir/chorus" --json "$dir/memory-chorus.json"
"$here/chorus-cluster.sh" stop "$dir/chorus"
echo "memory: JSON reports in $dir" >&2
