#!/bin/sh
# Runs the kernel-dependent tests of an already built test bundle on the running kernel and prints one
# `matrix:` line per result, which scripts/kernel-matrix.sh collects: the verifier's instruction counts, the
# BPF_PROG_TEST_RUN fixture suites, the services' and the HTTP enforcement's real-traffic suites and the seed
# scenario with real traffic. It runs both on the host and inside the guests kernel-matrix.sh boots (from the
# host's root, mounted read-only), so it writes only under /tmp. Needs root.
# Usage: kernel-matrix-runner.sh <repository>
set -u
repo=${1:?usage: kernel-matrix-runner.sh <repository>}
bundle="$repo/.build/debug/nodeagentPackageTests.xctest"
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# An emulated guest is slow: the HTTP enforcement tests' clients wait longer for each answer (and as long for the
# silence of a refused one).
export NODEAGENT_L7_CLIENT_TIMEOUT=${NODEAGENT_L7_CLIENT_TIMEOUT:-12}
logs=$(mktemp -d /tmp/kernel-matrix.XXXXXX)
kernel=$(uname -r)
echo "matrix: kernel=$kernel"

# The suites of each group, as XCTest filters (Module.Class or Module.Class/test). The fixture group is every
# suite that runs programs with BPF_PROG_TEST_RUN.
verifier="DatapathCoreTests.VerifierHeadroomTests,DatapathCoreTests.EndpointObjectTests"
verifier="$verifier,DatapathCoreTests.StackDepthTests,DatapathCoreTests.KernelBTFTests"
fixtures="DatapathCoreTests.EndpointProgramTests,DatapathCoreTests.DropAggregationTests"
fixtures="$fixtures,DatapathCoreTests.RingBufferReaderTests,ConntrackGCTests.DatapathCounterTests,ConntrackGCTests.SweepTests"
fixtures="$fixtures,DatapathCoreTests.ServiceTranslationTests,AgentTests.MaglevDatapathTests"
fixtures="$fixtures,AgentTests.LBFrontendPortsTests,DatapathCoreTests.EndpointSlotsTests"
fixtures="$fixtures,DatapathCoreTests.IPCacheTableTests,DatapathCoreTests.IPCacheHostTests"
fixtures="$fixtures,DatapathCoreTests.PolicyTableTests,DatapathCoreTests.PolicyBlocksTests"
# The services' real-traffic suites: the socket hooks (which BPF_PROG_TEST_RUN cannot run) and the per-packet path,
# and how tc programs attach (a tcx link from 6.6, a clsact filter before).
services="AgentTests.SocketLoadBalancerTests,AgentTests.SocketTerminationTests,AgentTests.ServiceTCTranslationTests"
services="$services,AgentTests.TCAttachTests/testOneLinkOfOursIsAttachedGivenANewProgramInPlaceAndDetached"
# HTTP rules decided in the kernel (sockops + sk_skb, which BPF_PROG_TEST_RUN cannot run): the object, its
# self-test and real requests between pods.
l7="AgentTests.L7SelfTestTests,AgentTests.L7EnforcementTests,AgentTests.L7MapEntriesTests"
endtoend="EndToEndTests.SeedScenarioTests/testSeedPoliciesEnforceTheReachabilityMatrix"
endtoend="$endtoend,EndToEndTests.HTTPPolicyTests/testTheArticlesPolicyDecidesEachRequestInTheKernel"
# Delivery between pods of the node by the datapath (tail call, bpf_fib_lookup and its kept answers,
# bpf_redirect_peer).
endtoend="$endtoend,EndToEndTests.HostRoutingTests/testPodToPodTrafficSkipsTheNodesStackAndStillMeetsIngressPolicy"
endtoend="$endtoend,EndToEndTests.HostRoutingTests/testAChangedRouteToAPodTakesEffectWithinASecond"

status=0
# Runs one group, then prints its verdict from XCTest's totals: `matrix: group=<g> result=pass|fail executed=<n>
# failures=<n> skipped=<n>`, followed by the failure lines and the log's tail when it failed.
run_group() {
    group=$1
    filter=$2
    log="$logs/$group.log"
    (cd "$repo" && timeout 1800 "$bundle" "$filter") >"$log" 2>&1
    code=$?
    totals=$(grep -E "Executed [0-9]+ tests?," "$log" | tail -1)
    executed=$(echo "$totals" | sed -n 's/.*Executed \([0-9]*\) tests\{0,1\},.*/\1/p')
    failures=$(echo "$totals" | sed -n 's/.*with \([0-9]*\) failures\{0,1\}.*/\1/p')
    skipped=$(grep -c "' skipped (" "$log")
    grep -E "^(verifier|stack): " "$log" | sed "s/^/matrix: /"
    result=pass
    # A skipped test proves nothing about the kernel, so it does not count as passed.
    if [ "$code" -ne 0 ] || [ -z "$executed" ] || [ "${failures:-1}" -ne 0 ] || [ "$skipped" -ne 0 ]; then
        result=fail
        status=1
    fi
    echo "matrix: group=$group result=$result executed=${executed:-0} failures=${failures:-?}" \
        "skipped=$skipped exit=$code"
    if [ "$result" = fail ]; then
        grep -E "error:|' failed|' skipped|libbpf|verifier|processed [0-9]+ insns" "$log" | head -200 |
            sed "s/^/matrix-log: $group: /"
        tail -40 "$log" | sed "s/^/matrix-log: $group: /"
    fi
}

run_group verifier "$verifier"
run_group fixtures "$fixtures"
run_group services "$services"
run_group l7 "$l7"
run_group endtoend "$endtoend"
rm -rf "$logs"
echo "matrix: done status=$status"
exit "$status"
