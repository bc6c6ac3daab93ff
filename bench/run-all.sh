#!/usr/bin/env bash
# Runs every benchmark in turn (micro, plugins, control plane, API, datapath, services, endpoints, cluster) after
# building once, and collects their tables and raw results in BENCH_OUT (default bench/results/). One failing
# benchmark does not stop the others; the exit status says whether all passed. Each script's own settings (ROUNDS,
# DURATION, ...) pass through.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_require_root

export BENCH_OUT=${BENCH_OUT:-$REPO_DIR/bench/results}
mkdir -p "$BENCH_OUT"
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    bench_log "building the agent and the tests (release)"
    ./scripts/setup.sh >/dev/null
    swift build -c release --static-swift-stdlib --product nodeagent >/dev/null
    swift build -c release --static-swift-stdlib --product nodectl >/dev/null
    swift build -c release -Xswiftc -enable-testing --build-tests --scratch-path "$BENCH_SCRATCH" >/dev/null
fi
export BENCH_NO_BUILD=1

failed=()
for script in micro plugins control-plane api datapath services endpoints cluster; do
    bench_log "=== bench/$script.sh"
    started=$SECONDS
    if ./bench/"$script".sh >"$BENCH_OUT/$script.log" 2>&1; then
        bench_log "bench/$script.sh done in $((SECONDS - started)) s"
    else
        failed+=("$script")
        bench_log "bench/$script.sh FAILED after $((SECONDS - started)) s; its last lines:"
        tail -15 "$BENCH_OUT/$script.log" >&2
    fi
done

{
    echo "# nodeagent benchmarks, $(date -u +%Y-%m-%dT%H:%MZ)," \
        "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "$(bench_machine)"
    for name in micro plugins control-plane api datapath services endpoints cluster; do
        echo
        [ -f "$BENCH_OUT/$name.txt" ] && cat "$BENCH_OUT/$name.txt" || echo "$name: no results (see $name.log)"
    done
} >"$BENCH_OUT/summary.md"
bench_log "summary: $BENCH_OUT/summary.md"
if [ ${#failed[@]} -gt 0 ]; then
    bench_log "failed: ${failed[*]}"
    exit 1
fi
