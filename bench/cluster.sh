#!/usr/bin/env bash
# Cluster mode: three nodes (network namespaces on an underlay of their own) with one agent each and a real
# three-member etcd cluster. Measures how long a new endpoint on node 1 takes until node 2 enforces its identity
# (NODEAGENT_BENCH_PROPAGATION endpoints, one at a time, default 500; p50/p99), etcd writes and keys per endpoint,
# and the agents' RSS and CPU with 3 nodes x NODEAGENT_BENCH_PER_NODE endpoints (default 300). The work is
# Tests/EndToEndTests/ClusterBenchmarkTests.swift, skipped by the test command.
#
# Environment: NODEAGENT_BENCH_PROPAGATION, NODEAGENT_BENCH_PER_NODE, BENCH_OUT (directory for the result),
# BENCH_NO_BUILD=1 (use the last release test build).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

bench_init
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
bench_build_tests
bench_log "machine: $(bench_machine)"
bench_test ClusterBenchmarkTests "$BENCH_WORK/test.log" \
    || { tail -40 "$BENCH_WORK/test.log" >&2; bench_die "the benchmark failed"; }
grep -q "testPropagationAndCost' passed" "$BENCH_WORK/test.log" \
    || { tail -40 "$BENCH_WORK/test.log" >&2; bench_die "the benchmark did not run"; }
{
    echo "cluster: $(bench_machine)"
    grep -E "^bench: " "$BENCH_WORK/test.log"
} | tee "$BENCH_WORK/cluster.txt"
if [ -n "${BENCH_OUT:-}" ]; then
    mkdir -p "$BENCH_OUT"
    cp "$BENCH_WORK/cluster.txt" "$BENCH_OUT/"
fi
