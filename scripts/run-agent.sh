#!/usr/bin/env bash
# Sets up the machine, builds nodeagent and nodectl (release), and runs the agent in the foreground with its
# defaults: socket /var/run/nodeagent/nodeagent.sock, state /var/lib/nodeagent, maps under /sys/fs/bpf/nodeagent.
# Extra arguments go to the agent, e.g. --config deploy/nodeagent.json.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d /opt/swift/usr/bin ] && export PATH="/opt/swift/usr/bin:$PATH"
./scripts/setup.sh
# The Swift runtime is linked in: the binaries run on hosts without a Swift toolchain, and the agent maps less.
swift build -c release --static-swift-stdlib --product nodeagent
swift build -c release --static-swift-stdlib --product nodectl
install -m 0755 .build/release/nodectl /usr/local/bin/nodectl
install -m 0755 .build/release/nodeagent /usr/local/bin/nodeagent
exec /usr/local/bin/nodeagent "$@"
