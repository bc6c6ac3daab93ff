#!/usr/bin/env bash
# Plugin benchmarks: conntrack GC sweep rate (entries/s) and NAT mappings per second, each the benchmark test its
# plugin ships, run in release mode when this checkout has it; otherwise the plugin's row says "not available".
#   ConntrackGC: Tests/ConntrackGCTests, a test named testBenchmark* (NODEAGENT_BENCH=1)
#   NAT:         Tests/NATTests/NATPerformanceTests.swift
# They load their own unpinned maps (BPF_PROG_TEST_RUN); nothing is attached to any interface.
#
# Environment: BENCH_OUT, BENCH_NO_BUILD=1 (use the last test build).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

bench_init
bench_packages python3
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
cd "$REPO_DIR"

gc_test=$(grep -lE 'func testBenchmark' Tests/ConntrackGCTests/*.swift 2>/dev/null | head -1 || true)
nat_test=$(ls Tests/NATTests/NATPerformanceTests.swift 2>/dev/null || true)

[ -n "$gc_test$nat_test" ] && bench_build_tests

bench_log "machine: $(bench_machine)"
{
    echo "plugins: $(bench_machine)"
    echo
    echo "## Conntrack GC sweep"
    if [ -z "$gc_test" ]; then
        echo "not available: this checkout has no ConntrackGC benchmark test (Tests/ConntrackGCTests, testBenchmark*)"
    else
        class=$(basename "$gc_test" .swift)
        if bench_test "ConntrackGCTests.$class" "$BENCH_WORK/gc.log"; then
            # The test prints its own table: a title line, then Markdown rows.
            sed -n '/^Conntrack GC sweep/,/^[^|]/p' "$BENCH_WORK/gc.log" | grep -E '^(Conntrack|\|)'
        else
            echo "FAILED ($gc_test):"
            tail -15 "$BENCH_WORK/gc.log"
        fi
    fi
    echo
    echo "## NAT"
    if [ -z "$nat_test" ]; then
        echo "not available: this checkout has no NAT benchmark test (Tests/NATTests/NATPerformanceTests.swift)"
    else
        if bench_test "NATTests.NATPerformanceTests" "$BENCH_WORK/nat.log"; then
            grep -E '^NAT cost' "$BENCH_WORK/nat.log" || echo "(the test printed no 'NAT cost' line)"
        else
            echo "FAILED ($nat_test):"
            tail -15 "$BENCH_WORK/nat.log"
        fi
    fi
} | tee "$BENCH_WORK/plugins.txt"
if [ -n "${BENCH_OUT:-}" ]; then
    mkdir -p "$BENCH_OUT"
    cp "$BENCH_WORK/plugins.txt" "$BENCH_OUT/"
fi
