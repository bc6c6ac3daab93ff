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

# The tests in two groups at once, each test in its own namespaces, pins and ports: the long suites (thousands of
# endpoints; the cluster suites with real etcd members and lease expiries; the agent restarts; the CNI and HTTP
# enforcement suites with their servers and timeouts) spend most of their time waiting on the kernel, etcd and
# timeouts rather than on the cores, so they run beside the rest. Schemathesis (a few minutes of generated API
# requests) goes with them, which keeps the two groups about as long as each other. They run from the test bundle
# itself, since a second `swift test` would wait for the first's lock on the build directory. Arguments (e.g.
# --filter X) run one `swift test` as given instead.
if [ $# -gt 0 ]; then
    exec swift test --skip-build "$@"
fi
slow='BadInputTests|Cluster[A-Za-z]*Tests|EtcdClientTests|NetlinkTests|RestartTests|CNITests|HTTPPolicyTests'
slow="$slow|L7EnforcementTests|SchemathesisTests"
bundle="$(swift build --show-bin-path)/nodeagentPackageTests.xctest"
slow_classes=$("$bundle" --list-tests | grep -E "^[A-Za-z0-9_]+\.[A-Za-z0-9_]+/" | grep -E "$slow" | sed 's|/.*||' | sort -u |
    paste -sd, -)
logs=$(mktemp -d)
"$bundle" "$slow_classes" >"$logs/slow.log" 2>&1 &
slow_pid=$!
status=0
swift test --skip-build --skip "$slow" >"$logs/rest.log" 2>&1 || status=$?
wait "$slow_pid" || status=$?
for group in rest slow; do
    echo "=== tests: $group"
    cat "$logs/$group.log"
done
echo "=== totals"
for group in rest slow; do
    echo "$group: $(grep "Executed [0-9]* tests" "$logs/$group.log" | tail -1 | sed 's/^[[:space:]]*//')"
done
rm -rf "$logs"
exit "$status"
