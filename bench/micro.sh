#!/usr/bin/env bash
# Micro benchmark: BPF_PROG_TEST_RUN ns/packet of from_endpoint with 1, 10,000 and 100,000 policy entries and
# identities (ipcache addresses), for a new connection (SYN: conntrack miss -> ipcache -> policy -> conntrack
# create), an established one (ACK: conntrack hit), and a denied one (also on a named port whose other peers came
# and went, before and after the policy filters' refresh), each pass sending a different packet per run
# so the maps are walked for many keys; plus new connections all to one destination (the maps as large, their
# entries hot), which separates the cost of the maps' size from that of reaching many peers. The work is
# Tests/DatapathCoreTests/MicroBenchmarkTests.swift, run in release mode; it loads its own unpinned copies of the
# maps and attaches nothing, so no interface is touched. Then the flow reader's CPU per HTTP request flow
# (Tests/AgentTests/FlowDecodingBenchmarkTests.swift: synthetic records through the reader's own decoding, no
# kernel), from the same test build.
#
# Environment: SIZES (1,10000,100000), FLOWS (distinct packets per pass, 20000), ROUNDS (5), FAMILY (4 or 6: the
# family of the endpoint's and its peers' addresses, 4), RULES (own,shared: each peer's key with a rule of its own,
# and one rule selecting every peer, as a label or namespace selector does; each shape its own columns), BENCH_OUT
# (directory
# for the table and raw results), BENCH_NO_BUILD=1 (use the last test build), COMPARE ("label=commit,...": each
# commit's endpoint object is compiled from its bpf/ and measured beside this build's in the same rounds).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SIZES=${SIZES:-1,10000,100000}
COMPARE=${COMPARE:-}
FLOWS=${FLOWS:-20000}
ROUNDS=${ROUNDS:-5}
FAMILY=${FAMILY:-4}
RULES=${RULES:-own,shared}
bench_init
bench_packages python3
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
bench_build_tests

# Other commits' endpoint objects, compiled as BuildTools/BPFCompile compiles this build's.
OBJECTS=
for item in ${COMPARE//,/ }; do
    label=${item%%=*} commit=${item#*=}
    mkdir -p "$BENCH_WORK/$label"
    git -C "$(dirname "$0")/.." archive "$commit" bpf | tar -x -C "$BENCH_WORK/$label"
    clang -target bpf -O2 -g -Wall -Werror -Wno-unused-function -I "$BENCH_WORK/$label/bpf/include" \
        -I "$BENCH_WORK/$label/bpf/lib" -idirafter "/usr/include/$(uname -m)-linux-gnu" \
        -c "$BENCH_WORK/$label/bpf/endpoint.bpf.c" -o "$BENCH_WORK/$label.o"
    OBJECTS+="${OBJECTS:+,}$label=$BENCH_WORK/$label.o"
done

bench_log "machine: $(bench_machine)"
bench_log "sizes $SIZES, $FLOWS IPv$FAMILY packets per pass, $ROUNDS rounds, rules: $RULES"
NODEAGENT_BENCH_RULES=$RULES NODEAGENT_BENCH_FAMILY=$FAMILY NODEAGENT_BENCH_SIZES=$SIZES NODEAGENT_BENCH_FLOWS=$FLOWS \
    NODEAGENT_BENCH_ROUNDS=$ROUNDS \
    NODEAGENT_BENCH_OBJECTS=$OBJECTS NODEAGENT_BENCH_OUT=$BENCH_WORK/micro.tsv \
    bench_test MicroBenchmarkTests "$BENCH_WORK/test.log" \
    || { tail -40 "$BENCH_WORK/test.log" >&2; bench_die "the benchmark test failed"; }
grep -q "MicroBenchmarkTests.testFromEndpointCostAsPolicyGrows' passed" "$BENCH_WORK/test.log" \
    || { tail -40 "$BENCH_WORK/test.log" >&2; bench_die "the benchmark did not run (skipped?)"; }
bench_test FlowDecodingBenchmarkTests "$BENCH_WORK/flow-decoding.log" \
    || { tail -40 "$BENCH_WORK/flow-decoding.log" >&2; bench_die "the flow decoding benchmark failed"; }
grep -q "testFlowDecodingCostPerHTTPRequest' passed" "$BENCH_WORK/flow-decoding.log" \
    || { tail -40 "$BENCH_WORK/flow-decoding.log" >&2; bench_die "the flow decoding benchmark did not run"; }

{
    echo "micro: from_endpoint under BPF_PROG_TEST_RUN; $(bench_machine)"
    echo "Each test run is one packet (repeat=1): the kernel's duration includes its timer, so the ARP row is the"
    echo "floor of a run; 'one flow repeated' is one ACK run $FLOWS times in the kernel (everything hot in cache)."
    sed -n '/^=== from_endpoint/,/^=== end/p' "$BENCH_WORK/test.log" | grep -v '^=== end'
    echo
    echo "The flow reader per HTTP request (GET between two local pods, records copied as the ring hands them over):"
    grep "^bench: flow decoding" "$BENCH_WORK/flow-decoding.log"
} | tee "$BENCH_WORK/micro.txt"
if [ -n "${BENCH_OUT:-}" ]; then
    mkdir -p "$BENCH_OUT"
    cp "$BENCH_WORK/micro.txt" "$BENCH_WORK/micro.tsv" "$BENCH_OUT/"
fi
