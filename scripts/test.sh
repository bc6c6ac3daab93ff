#!/usr/bin/env bash
# Sets up the machine and runs every test: the OpenAPI spec check, the Kubernetes manifests and systemd unit checks,
# the Swift formatting check, unit tests, BPF_PROG_TEST_RUN fixtures, and the end-to-end suites that wire pods as network namespaces and send
# real traffic. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d /opt/swift/usr/bin ] && export PATH="/opt/swift/usr/bin:$PATH"
./scripts/setup.sh
python3 -m openapi_spec_validator openapi/openapi.yaml
echo "openapi/openapi.yaml: valid OpenAPI"
kubernetes-validate --strict deploy/kubernetes/*.yaml

# Formatting: .swift-format (4 spaces, 120 columns) over every Swift file; swift-format leaves long string
# literals alone, so the column limit is checked on its own.
swift_sources=(Sources Plugins Tests BuildTools Package.swift)
swift-format lint --strict --recursive "${swift_sources[@]}"
long=$(find "${swift_sources[@]}" -name '*.swift' -exec awk 'length > 120 { print FILENAME ":" FNR }' {} +)
if [ -n "$long" ]; then
    echo "$long"
    echo "Swift lines over 120 columns" >&2
    exit 1
fi
echo "Swift sources: formatted, within 120 columns"

swift build --build-tests

# The kernel preflight on this machine's kernel, as the agent runs it at start (other kernels: the hand-run
# scripts/kernel-matrix.sh, results in KERNELS.md). The verifier-headroom check is VerifierHeadroomTests below, and
# StackDepthTests holds every call chain's stack to what Linux 6.1 accepts whatever kernel runs the tests.
"$(swift build --show-bin-path)/nodeagent" preflight

# systemd-analyze verify, in a scratch root holding the distribution's units, ours and the built agent at the path
# ExecStart names: it needs no running systemd (containers, CI) and checks that the command exists. It reports bad
# settings as warnings with exit status 0, so any output fails too.
verify_units() {
    local root status=0 output
    root=$(mktemp -d)
    mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/usr/lib/systemd"
    cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
    cp .build/debug/nodeagent "$root/usr/local/bin/nodeagent"
    cp deploy/systemd/*.service "$root/etc/systemd/system/"
    output=$(cd deploy/systemd && systemd-analyze verify --root="$root" *.service 2>&1) || status=$?
    rm -rf "$root"
    if [ "$status" -ne 0 ] || [ -n "$output" ]; then
        echo "$output"
        echo "deploy/systemd: systemd-analyze verify failed" >&2
        return 1
    fi
    echo "deploy/systemd/*.service: verified"
}
verify_units

# The test classes run from the test bundle itself, NODEAGENT_TEST_JOBS of them at once (3 by default), each test in
# its own namespaces, pins and ports: most suites spend their time waiting on the kernel, etcd, agent restarts and
# the timeouts of dropped connections rather than on the cores. The longest classes start first so that none is left
# to run alone at the end; the rest follow in name order. Arguments (e.g. --filter X) run one `swift test` as given
# instead.
if [ $# -gt 0 ]; then
    exec swift test --skip-build "$@"
fi
longest='SchemathesisTests RestartTests BadInputTests ClusterResilienceTests CNITests L7EnforcementTests
    ClusterPolicyTests NetworkPolicyTests EndpointAPITests SocketLoadBalancerTests PolicySemanticsTests'
bundle="$(swift build --show-bin-path)/nodeagentPackageTests.xctest"
classes=$("$bundle" --list-tests | grep -E "^[A-Za-z0-9_]+\.[A-Za-z0-9_]+/" | sed 's|/.*||' | sort -u)
ordered=$(
    for name in $longest; do grep -E "\.$name\$" <<<"$classes"; done
    grep -v -E "\.($(tr -s ' \n' '|' <<<"$longest" | sed 's/^|//; s/|$//'))\$" <<<"$classes" || true
)
logs=$(mktemp -d)
# Each class writes its own log; a failing one is named in $logs/failed.
run_class() {
    "$1" "$2" >"$3/$2.log" 2>&1 || echo "$2" >>"$3/failed"
}
export -f run_class
xargs -P "${NODEAGENT_TEST_JOBS:-3}" -I{} bash -c 'run_class "$0" "$1" "$2"' "$bundle" {} "$logs" <<<"$ordered"
tests=0
failures=0
for class in $ordered; do
    echo "=== tests: $class"
    cat "$logs/$class.log"
    summary=$(grep -E "Executed [0-9]+ tests?, with" "$logs/$class.log" | tail -1 || true)
    count=$(grep -oE "Executed [0-9]+" <<<"$summary" | grep -oE "[0-9]+" || echo 0)
    failed=$(grep -oE "[0-9]+ failures?" <<<"$summary" | grep -oE "^[0-9]+" || echo 0)
    tests=$((tests + count))
    failures=$((failures + failed))
done
echo "=== totals"
echo "Executed $tests tests in $(wc -l <<<"$ordered") classes, with $failures failures"
status=0
if [ -s "$logs/failed" ]; then
    echo "failed classes: $(paste -sd' ' "$logs/failed")"
    status=1
fi
rm -rf "$logs"
exit "$status"
