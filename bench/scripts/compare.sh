#!/usr/bin/env bash
# compare.sh [loadgen flags...]
#
# The whole comparison in one invocation: starts a fresh three-member etcd
# cluster and a fresh three-member chorus cluster (both fsync on), runs
# loadgen --system etcd,chorus with the given flags (default: the issue's
# workload, 1/64/256 clients x put/get/mix, 10 s each), prints the table and
# writes the JSON report to $BENCH_DIR/report.json, then stops both clusters.
#
# BENCH_DIR (default: a new directory under /tmp) holds the clusters' data,
# logs and the report; it must not be tmpfs (fsync would be free there).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${BENCH_DIR:-$(mktemp -d /tmp/chorus-bench.XXXXXX)}
mkdir -p "$dir"
if [ "$(stat -f -c %T "$dir")" = tmpfs ]; then
	echo "compare: $dir is tmpfs; fsync costs nothing there, so the comparison would mislead" >&2
	exit 1
fi
cleanup() {
	"$here/chorus-cluster.sh" stop "$dir/chorus" >/dev/null 2>&1 || true
	"$here/etcd-cluster.sh" stop "$dir/etcd" >/dev/null 2>&1 || true
}
trap cleanup EXIT
(cd "$here/.." && go build -o "$dir/loadgen" ./cmd/loadgen)
"$here/etcd-cluster.sh" start "$dir/etcd"
"$here/chorus-cluster.sh" start "$dir/chorus"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "compare: load average before the run: $load_before" >&2
# chorus-cluster.sh builds the working tree, which may hold uncommitted work: say so.
rev=$(git -C "$here/../.." describe --always --dirty 2>/dev/null || echo unknown)
etcd_version=$(/usr/bin/etcd --version 2>/dev/null | sed -n 's/^etcd Version: //p')
"$dir/loadgen" --system etcd,chorus --etcd-pid-dir "$dir/etcd" --chorus-pid-dir "$dir/chorus" \
	--label "chorus $rev; etcd $etcd_version; load average before $load_before" \
	--json "$dir/report.json" "$@"
echo "compare: load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "compare: JSON report in $dir/report.json" >&2
