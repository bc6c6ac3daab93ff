#!/usr/bin/env bash
# Installs what nodeagent needs on a Debian machine (run as root): C libraries, network tools, the spec validator,
# systemd's unit checker, and a bpffs at /sys/fs/bpf. Safe to run again.
set -euo pipefail

# libsystemd0 (loaded for sd_notify under Type=notify) comes with Debian.
# systemd: systemd-analyze verify of deploy/systemd in scripts/test.sh.
# etcd-server, etcd-client, openssl: the real etcd the EtcdClient tests start, and their TLS certificates.
packages=(libbpf-dev libelf-dev zlib1g-dev libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev
    libnl-3-dev libnl-route-3-dev pkg-config iproute2 util-linux curl socat python3-pip netcat-openbsd iptables
    containernetworking-plugins systemd bpftool etcd-server etcd-client openssl)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Validators for the API contract and the Kubernetes manifests, and the API fuzzer (PyPI).
pip_install() {
    python3 -m pip install -q "$@" 2>/dev/null || python3 -m pip install -q --break-system-packages "$@"
}
python3 -c 'import openapi_spec_validator' 2>/dev/null || pip_install openapi-spec-validator
command -v kubernetes-validate >/dev/null || pip_install kubernetes-validate
# Property-based testing of the live API against openapi/openapi.yaml.
command -v schemathesis >/dev/null || pip_install schemathesis
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
# A cgroup v2 hierarchy for the socket load balancer's hooks (tests attach to children of it): unified and hybrid
# machines have one; a machine with cgroup v1 only gets one beside it.
if ! awk '$3 == "cgroup2" { found = 1 } END { exit !found }' /proc/mounts; then
    mkdir -p /run/nodeagent-cgroup2
    mount -t cgroup2 none /run/nodeagent-cgroup2
fi
