#!/usr/bin/env bash
# Sets up the machine and runs every test: the OpenAPI spec check, unit tests, BPF_PROG_TEST_RUN fixtures, and the
# end-to-end suites that wire pods as network namespaces and send real traffic. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d /opt/swift/usr/bin ] && export PATH="/opt/swift/usr/bin:$PATH"
./scripts/setup.sh
python3 -m openapi_spec_validator openapi/openapi.yaml
echo "openapi/openapi.yaml: valid OpenAPI"
kubernetes-validate --strict deploy/kubernetes/*.yaml
swift build --build-tests
swift test --skip-build "$@"
