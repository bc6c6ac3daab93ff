#!/usr/bin/env bash
# Sets up the machine and runs every test: the OpenAPI spec check, the Kubernetes manifests and systemd unit checks,
# unit tests, BPF_PROG_TEST_RUN fixtures, and the end-to-end suites that wire pods as network namespaces and send
# real traffic. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d /opt/swift/usr/bin ] && export PATH="/opt/swift/usr/bin:$PATH"
./scripts/setup.sh
python3 -m openapi_spec_validator openapi/openapi.yaml
echo "openapi/openapi.yaml: valid OpenAPI"
kubernetes-validate --strict deploy/kubernetes/*.yaml
swift build --build-tests

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

swift test --skip-build "$@"
