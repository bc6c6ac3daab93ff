#!/usr/bin/env bash
# Sets up the machine, builds nodeagent and nodectl (release), installs them with the config and systemd unit under
# deploy/, and runs the agent in the foreground with its defaults: socket /var/run/nodeagent/nodeagent.sock, state
# /var/lib/nodeagent, maps under /sys/fs/bpf/nodeagent. Extra arguments go to the agent, e.g. --config
# /etc/nodeagent/config.json; `run-agent.sh install` installs only (then: systemctl enable --now nodeagent).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d /opt/swift/usr/bin ] && export PATH="/opt/swift/usr/bin:$PATH"
./scripts/setup.sh
# The Swift runtime is linked in: the binaries run on hosts without a Swift toolchain, and the agent maps less.
swift build -c release --static-swift-stdlib --product nodeagent
swift build -c release --static-swift-stdlib --product nodectl
install -m 0755 .build/release/nodectl /usr/local/bin/nodectl
install -m 0755 .build/release/nodeagent /usr/local/bin/nodeagent
# What deploy/systemd/nodeagent.service runs: its config (an existing one is kept) and the unit itself.
install -d -m 0755 /etc/nodeagent
[ -e /etc/nodeagent/config.json ] || install -m 0644 deploy/nodeagent.json /etc/nodeagent/config.json
if [ -d /etc/systemd/system ]; then
    install -m 0644 deploy/systemd/nodeagent.service /etc/systemd/system/nodeagent.service
    if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
fi
if [ "${1:-}" = install ]; then
    echo "installed /usr/local/bin/nodeagent, /usr/local/bin/nodectl, /etc/nodeagent/config.json and the unit"
    exit 0
fi
exec /usr/local/bin/nodeagent "$@"
