#!/usr/bin/env bash
# Endpoint scale: creates, lists and deletes NODEAGENT_SCALE_ENDPOINTS endpoints (default 10,000) on veth pairs in
# a node namespace of its own, through one keep-alive API client, and prints the times. The work is
# Tests/EndToEndTests/BadInputTests.swift (testThousandsOfEndpoints), which the test command runs with 2,000; this
# script runs the full count by hand (about 10 minutes on two cores) so the suite stays short.
#
# Environment: NODEAGENT_SCALE_ENDPOINTS (10000), BENCH_OUT (directory for the result), BENCH_NO_BUILD=1 (use the
# last test build).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

export NODEAGENT_SCALE_ENDPOINTS=${NODEAGENT_SCALE_ENDPOINTS:-10000}
bench_init
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
bench_build_tests
bench_log "machine: $(bench_machine)"
bench_log "$NODEAGENT_SCALE_ENDPOINTS endpoints"
bench_test BadInputTests/testThousandsOfEndpoints "$BENCH_WORK/test.log" \
    || { tail -40 "$BENCH_WORK/test.log" >&2; bench_die "the test failed"; }
grep -q "testThousandsOfEndpoints' passed" "$BENCH_WORK/test.log" \
    || { tail -40 "$BENCH_WORK/test.log" >&2; bench_die "the test did not run"; }
{
    echo "endpoints: $(bench_machine)"
    grep -E "^[0-9]+ endpoints: " "$BENCH_WORK/test.log"
} | tee "$BENCH_WORK/endpoints.txt"
if [ -n "${BENCH_OUT:-}" ]; then
    mkdir -p "$BENCH_OUT"
    cp "$BENCH_WORK/endpoints.txt" "$BENCH_OUT/"
fi
