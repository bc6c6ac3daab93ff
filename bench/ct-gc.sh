#!/bin/sh
# Conntrack GC sweep benchmark: na_ct (max 1,048,576) filled with 1,000,000 IPv4/IPv6 entries, swept with 100 %, 10 %
# and none of them expired, 3 rounds each; prints median, min–max and entries/s. Needs root (it loads the BPF
# object, unpinned) and the ConntrackGCTests test target.
set -eu
cd "$(dirname "$0")/.."
NODEAGENT_BENCH=1 exec swift test -c release \
    --filter 'ConntrackGCTests.BenchmarkTests/testBenchmarkSweepOfOneMillionEntries'
