// Package bench is chorus's side-by-side load generator: the same closed-loop
// workload against a chorus cluster and an etcd cluster, so the ratio between
// the two comes from one run on one machine.
//
// It lives in its own Go module (github.com/chorus-project/chorus/bench) so
// the main module keeps no etcd dependency.
//
// The pieces:
//
//   - [Driver]: one system's Put and linearizable Get; [NewEtcd] (a small pool
//     of clientv3 clients) and [NewChorus] (one chorus client, the way an
//     application shares one).
//   - [Run]: a closed loop of N workers, each issuing its next operation as
//     soon as the previous one answers, over uniformly random keys; operations
//     that finish inside the measured window (after the warm-up) go into a
//     [Histogram].
//   - [Preload]: writes every key once before a get or mix run, so gets hit.
//   - [LoadForMemory] and [RSS]: the memory mode (load N keys, then read each
//     member's VmRSS from /proc).
//
// Keys are exactly KeyBytes long ("k" and a zero-padded index), values are
// ValueBytes of pseudo-random bytes.
package bench
