#!/usr/bin/env python3
"""Helpers for bench/services.sh: kube-proxy's iptables-mode rules for N services, the same services as nodeagent
API requests, timing of iptables-restore runs, and the tables.

The rules follow what kube-proxy's iptables proxier (Kubernetes 1.28 and later) writes for ClusterIP services with
ready endpoints, as its own tests spell them (pkg/proxy/iptables/proxier_test.go): chains named by a hash of the
service port (KUBE-SVC-*) and of the endpoint (KUBE-SEP-*), one KUBE-SERVICES rule per service port ahead of the
KUBE-NODEPORTS rule that must stay last, the cluster-CIDR masquerade rule first in each service chain, then one
`statistic --mode random --probability 1/k` jump per endpoint (the last unconditional), and in each endpoint chain
the hairpin masquerade rule before the DNAT. kube-proxy always restores with --noflush and declares every chain it
writes, which flushes them; a partial sync (1.27+) rewrites the top-level chains (KUBE-SERVICES in full) and only
the chains of services that changed.
"""
import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

NAMESPACE = "bench"
PORT_NAME = "http"
SERVICE_PORT = 80


# ---------------------------------------------------------------------------------------------------------------
# The services


def service_ip(index):
    """Service i (1-based) gets 10.96.x.y; 10.96.0.0 itself is never used."""
    return f"10.96.{index >> 8 & 255}.{index & 255}"


def backends(args, variant):
    """The backend set: every backend pod on the backend port; variant "b" moves the last one to the other port,
    so a change rewrites one endpoint, as a rolling update of one pod does."""
    result = [(ip, args.backend_port) for ip in args.backend_ips.split(",")]
    if variant == "b":
        result[-1] = (result[-1][0], args.alt_port)
    return result


def port_name(index):
    return f"{NAMESPACE}/svc-{index}:{PORT_NAME}"


def chain_hash(text):
    """kube-proxy's chain suffix: the first 16 characters of the base32 SHA-256 of the name."""
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def svc_chain(index):
    return "KUBE-SVC-" + chain_hash(port_name(index) + "tcp")


def sep_chain(index, ip, port):
    return "KUBE-SEP-" + chain_hash(port_name(index) + "tcp" + f"{ip}:{port}")


# ---------------------------------------------------------------------------------------------------------------
# iptables-restore input


FILTER_CHAINS = ["KUBE-NODEPORTS", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-PROXY-FIREWALL"]
NAT_CHAINS = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]
NODEPORTS_RULE = (
    '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this '
    'chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS'
)


def filter_table():
    """kube-proxy's filter table with every service having endpoints: only KUBE-FORWARD holds rules."""
    lines = ["*filter"] + [f":{c} - [0:0]" for c in FILTER_CHAINS]
    lines += [
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate '
        "RELATED,ESTABLISHED -j ACCEPT",
        "COMMIT",
    ]
    return lines


def top_nat_rules(count):
    lines = [
        "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE '
        "--random-fully",
    ]
    for i in range(1, count + 1):
        lines.append(
            f'-A KUBE-SERVICES -m comment --comment "{port_name(i)} cluster IP" -m tcp -p tcp -d {service_ip(i)} '
            f"--dport {SERVICE_PORT} -j {svc_chain(i)}"
        )
    lines.append(NODEPORTS_RULE)
    return lines


def service_chains(index, endpoints, cluster_cidr):
    """(chain declarations, rules) of one service: its KUBE-SVC chain and one KUBE-SEP chain per endpoint."""
    svc = svc_chain(index)
    name = port_name(index)
    chains = [svc] + [sep_chain(index, ip, port) for ip, port in endpoints]
    rules = [
        f'-A {svc} -m comment --comment "{name} cluster IP" -m tcp -p tcp -d {service_ip(index)} '
        f"--dport {SERVICE_PORT} ! -s {cluster_cidr} -j KUBE-MARK-MASQ"
    ]
    n = len(endpoints)
    for k, (ip, port) in enumerate(endpoints):
        sep = sep_chain(index, ip, port)
        # The k-th of n endpoints is taken with probability 1/(n-k), so each is picked 1/n of the time.
        chance = "" if k == n - 1 else f"-m statistic --mode random --probability {1.0 / (n - k):.10f} "
        rules.append(f'-A {svc} -m comment --comment "{name} -> {ip}:{port}" {chance}-j {sep}')
    for ip, port in endpoints:
        sep = sep_chain(index, ip, port)
        rules.append(f"-A {sep} -m comment --comment {name} -s {ip}/32 -j KUBE-MARK-MASQ")
        rules.append(f"-A {sep} -m comment --comment {name} -m tcp -p tcp -j DNAT --to-destination {ip}:{port}")
    return chains, rules


def cmd_ipt_setup(args):
    """The chains and the jumps from the built-in chains, which kube-proxy ensures (iptables -C / -I) before its
    first restore."""
    lines = ["*filter"] + [f":{c} - [0:0]" for c in FILTER_CHAINS]
    for hook in ("INPUT", "FORWARD", "OUTPUT"):
        lines.append(
            f'-A {hook} -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" '
            "-j KUBE-PROXY-FIREWALL"
        )
    lines += [
        '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
        '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" '
        "-j KUBE-EXTERNAL-SERVICES",
        '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" '
        "-j KUBE-EXTERNAL-SERVICES",
        '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        "COMMIT",
        "*nat",
    ]
    lines += [f":{c} - [0:0]" for c in NAT_CHAINS]
    lines += [
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        "COMMIT",
    ]
    print("\n".join(lines))
    return 0


def cmd_ipt_full(args):
    """A full sync: every chain declared (so flushed) and written again."""
    chains, rules = [], []
    for i in range(1, args.services + 1):
        c, r = service_chains(i, backends(args, "a"), args.cluster_cidr)
        chains += c
        rules += r
    lines = filter_table() + ["*nat"] + [f":{c} - [0:0]" for c in NAT_CHAINS + chains]
    lines += top_nat_rules(args.services) + rules + ["COMMIT"]
    print("\n".join(lines))
    return 0


def cmd_ipt_change(args):
    """One service's endpoint set moved from variant --from to --to: its KUBE-SVC chain and the endpoint chains
    written again, the chain of the endpoint that went away deleted. --partial adds what kube-proxy's partial sync
    writes around it: the filter table and the top-level nat chains, KUBE-SERVICES with every service."""
    old, new = backends(args, args.old), backends(args, args.new)
    chains, rules = service_chains(args.service, new, args.cluster_cidr)
    gone = [sep_chain(args.service, ip, port) for ip, port in old if (ip, port) not in new]
    lines = filter_table() if args.partial else []
    lines.append("*nat")
    if args.partial:
        lines += [f":{c} - [0:0]" for c in NAT_CHAINS]
    # A chain that goes is declared too (so flushed) before it is deleted, as kube-proxy writes it: a chain that
    # still holds rules cannot be deleted.
    lines += [f":{c} - [0:0]" for c in chains + gone]
    if args.partial:
        lines += top_nat_rules(args.services)
    lines += rules + [f"-X {c}" for c in gone] + ["COMMIT"]
    print("\n".join(lines))
    return 0


# ---------------------------------------------------------------------------------------------------------------
# nodeagent requests


def service_body(args, index, variant):
    return {
        "id": index,
        "frontend-address": {"ip": service_ip(index), "port": SERVICE_PORT, "protocol": "TCP"},
        "backend-addresses": [{"ip": ip, "port": port} for ip, port in backends(args, variant)],
        "flags": {"type": "ClusterIP", "name": f"svc-{index}", "namespace": NAMESPACE},
    }


def cmd_agent_creates(args):
    """PUT /v1/service/{id} for services --first..--last (JSON lines for benchlib api-timed)."""
    for i in range(args.first, args.last + 1):
        print(json.dumps({"method": "PUT", "path": f"/v1/service/{i}", "body": service_body(args, i, "a")}))
    return 0


def cmd_agent_deletes(args):
    """DELETE /v1/service/{id} for services --first..--last."""
    for i in range(args.first, args.last + 1):
        print(json.dumps({"method": "DELETE", "path": f"/v1/service/{i}"}))
    return 0


def cmd_agent_changes(args):
    """--count PUTs of one service, each a real change: --kind endpoint alternates its endpoint set between the two
    variants (a backend leaves, another comes), --kind weight alternates the last backend's weight between 2 and 1
    (the same backends, so no connection has to end)."""
    for k in range(args.count):
        if args.kind == "endpoint":
            body = service_body(args, args.service, "b" if k % 2 == 0 else "a")
        else:
            body = service_body(args, args.service, "a")
            body["backend-addresses"][-1]["weight"] = 2 if k % 2 == 0 else 1
        print(json.dumps({"method": "PUT", "path": f"/v1/service/{args.service}", "body": body}))
    return 0


# ---------------------------------------------------------------------------------------------------------------
# Timing commands


def cmd_timed_stdin(args):
    """Runs the command once per input file (the file on its stdin), timing each run from fork to exit; prints a
    JSON summary like benchlib's api-timed. Every run must succeed."""
    times = []
    for path in args.files:
        with open(path, "rb") as f:
            t0 = time.perf_counter()
            done = subprocess.run(args.argv, stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            times.append((time.perf_counter() - t0) * 1000.0)
        if done.returncode != 0:
            print(f"{' '.join(args.argv)} < {path}: exit {done.returncode}: {done.stderr[:300]!r}", file=sys.stderr)
            return 1
    summary = {
        "label": args.label,
        "n": len(times),
        "total_ms": sum(times),
        "median_ms": benchlib.quantile(times, 0.5),
        "p99_ms": benchlib.quantile(times, 0.99),
        "min_ms": min(times),
        "max_ms": max(times),
        "samples_ms": times,
    }
    print(json.dumps(summary))
    return 0


MEMINFO_KEYS = ("SUnreclaim", "VmallocUsed", "Percpu")


def cmd_meminfo(args):
    """The kernel memory rules can live in, from /proc/meminfo in KiB: "SUnreclaim VmallocUsed Percpu" (nf_tables
    rules are slab objects; x_tables keeps each table's rules in one kvmalloc'ed blob, vmalloc once large, and the
    rule counters in per-CPU memory)."""
    values = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0])
    print(*(values[k] for k in MEMINFO_KEYS))
    return 0


def cmd_xt_size(args):
    """The x_tables (iptables-legacy) tables of this namespace as the kernel holds them: IPT_SO_GET_INFO gives each
    table's rule count and the size of its rule blob, which the kernel keeps in one kvmalloc'ed copy; each rule
    also has a 16-byte counter per possible CPU. Prints "entries blob-bytes counter-bytes" summed over the tables."""
    import ctypes
    import socket

    libc = ctypes.CDLL(None, use_errno=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    ipt_so_get_info = 64  # IPT_BASE_CTL
    with open("/sys/devices/system/cpu/possible") as f:
        first, _, last = f.read().strip().partition("-")
        cpus = int(last or first) - int(first) + 1
    entries = size = 0
    for table in args.tables.split(","):
        # struct ipt_getinfo: name[32], valid_hooks, hook_entry[5], underflow[5], num_entries, size.
        buf = ctypes.create_string_buffer(table.encode().ljust(84, b"\0"), 84)
        length = ctypes.c_uint(84)
        if libc.getsockopt(sock.fileno(), socket.IPPROTO_IP, ipt_so_get_info, buf, ctypes.byref(length)) != 0:
            print(f"{table}: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
            return 1
        n, bytes_ = (int.from_bytes(buf.raw[o : o + 4], sys.byteorder) for o in (76, 80))
        entries += n
        size += bytes_
    print(entries, size, entries * 16 * cpus)
    return 0


def cmd_meminfo_delta(args):
    """The growth between two `meminfo` lines, as text for the memory table."""
    before, after = [int(x) for x in args.before.split()], [int(x) for x in args.after.split()]
    print(", ".join(f"{k} {(a - b) / 1024:+.1f} MiB" for k, b, a in zip(MEMINFO_KEYS, before, after)))
    return 0


# ---------------------------------------------------------------------------------------------------------------
# Tables


def cmd_table(args):
    rows = benchlib.load(args.results)
    facts = benchlib.load(args.facts) if args.facts else []
    labels = dict(item.split("=", 1) for item in args.label)
    cases = args.cases.split(",")
    sizes = sorted({int(r["mode"]) for r in rows})
    out = []
    scaling = {}
    for size in sizes:
        mine = [r for r in rows if int(r["mode"]) == size]
        rounds = len({r["round"] for r in mine})
        out.append(
            f"\n{size:,} services × {args.backends} backends: {args.load}, {rounds} rounds, medians [min–max]; "
            f"×direct = same-round ratio to `{args.baseline}`"
        )
        out.append("| case | conn/s | conn/s ×direct | CPU µs/conn | CPU ×direct | machine CPU µs/conn | errors |")
        out.append("|---|---|---|---|---|---|---|")
        for case in cases:
            cr = [r for r in mine if r["case"] == case]
            if not cr:
                continue
            rate = benchlib.paired_ratios(mine, case, args.baseline, "rps")
            cpu = benchlib.paired_ratios(mine, case, args.baseline, "cpu_us_per_req")
            scaling.setdefault(case, {})[size] = (rate, [r["cpu_us_per_req"] for r in cr])
            out.append(
                f"| {labels.get(case, case)} | {benchlib.span([r['rps'] for r in cr])} | {benchlib.ratio_cell(rate)} "
                f"| {benchlib.span([r['cpu_us_per_req'] for r in cr], 1)} | {benchlib.ratio_cell(cpu)} "
                f"| {benchlib.span([r['machine_us_per_req'] for r in cr], 1)} | {sum(r['errors'] for r in cr)} |"
            )
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        # Sizes run one after another, so absolute rates moved with the machine's other load in between; the
        # ratio to `direct` of the same round does not.
        out.append(
            f"\nScaling {small:,} → {large:,} services: conn/s ×direct (median of same-round ratios) at each size, "
            f"and its fall = ×direct at {small:,} / ×direct at {large:,} (1.00 flat, 2.00 half the rate); "
            f"CPU µs per connection (median) at each size and its growth {large:,} / {small:,}"
        )
        head = " | ".join(f"×direct {s:,}" for s in sizes) + " | fall | " + " | ".join(f"CPU {s:,}" for s in sizes)
        out.append(f"| case | {head} | CPU growth |")
        out.append("|---|" + "---|" * (2 * len(sizes) + 2))
        for case in cases:
            by_size = scaling.get(case, {})
            if small not in by_size or large not in by_size:
                continue
            rates = [f"{benchlib.med(by_size[s][0]):.2f}" if s in by_size else "n/a" for s in sizes]
            cpus = [f"{benchlib.med(by_size[s][1]):.1f}" if s in by_size else "n/a" for s in sizes]
            fall = benchlib.med(by_size[small][0]) / benchlib.med(by_size[large][0])
            growth = benchlib.med(by_size[large][1]) / benchlib.med(by_size[small][1])
            out.append(
                f"| {labels.get(case, case)} | " + " | ".join(rates) + f" | {fall:.2f} | " + " | ".join(cpus)
                + f" | {growth:.2f} |"
            )
    timings = [f for f in facts if f.get("kind") == "timing"]
    if timings:
        out.append("\nOne service added or changed, ms: median [min–max] (p99) over n")
        out.append("| operation | services | n | median [min–max] | p99 |")
        out.append("|---|---|---|---|---|")
        for f in timings:
            samples = f["samples_ms"]
            out.append(
                f"| {f['what']} | {f['services']:,} | {f['n']} | {benchlib.span(samples, 2)} "
                f"| {benchlib.fmt(f['p99_ms'], 2)} |"
            )
    memory = [f for f in facts if f.get("kind") == "memory"]
    if memory:
        out.append("\nMemory")
        out.append("| what | services | value |")
        out.append("|---|---|---|")
        for f in memory:
            out.append(f"| {f['what']} | {f['services']:,} | {f['value']} |")
    print("\n".join(out))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def service_args(p):
        p.add_argument("--backend-ips", required=True, help="comma list of backend pod addresses")
        p.add_argument("--backend-port", type=int, default=8080)
        p.add_argument("--alt-port", type=int, default=8081, help="the last backend's port in variant b")
        p.add_argument("--cluster-cidr", default="10.245.0.0/16")

    p = sub.add_parser("ipt-setup")
    p.set_defaults(func=cmd_ipt_setup)
    p = sub.add_parser("ipt-full")
    p.add_argument("services", type=int)
    service_args(p)
    p.set_defaults(func=cmd_ipt_full)
    p = sub.add_parser("ipt-change")
    p.add_argument("services", type=int)
    p.add_argument("--service", type=int, required=True)
    p.add_argument("--old", choices=["a", "b"], required=True)
    p.add_argument("--new", choices=["a", "b"], required=True)
    p.add_argument("--partial", action="store_true")
    service_args(p)
    p.set_defaults(func=cmd_ipt_change)
    p = sub.add_parser("agent-creates")
    p.add_argument("--first", type=int, required=True)
    p.add_argument("--last", type=int, required=True)
    service_args(p)
    p.set_defaults(func=cmd_agent_creates)
    p = sub.add_parser("agent-deletes")
    p.add_argument("--first", type=int, required=True)
    p.add_argument("--last", type=int, required=True)
    p.set_defaults(func=cmd_agent_deletes)
    p = sub.add_parser("agent-changes")
    p.add_argument("--service", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--kind", choices=["endpoint", "weight"], default="endpoint")
    service_args(p)
    p.set_defaults(func=cmd_agent_changes)
    p = sub.add_parser("timed-stdin")
    p.add_argument("--label", default="")
    p.add_argument("--input", dest="files", action="append", required=True, help="a file for one run's stdin")
    p.add_argument("argv", nargs=argparse.REMAINDER, help="-- the command")
    p.set_defaults(func=cmd_timed_stdin)
    p = sub.add_parser("meminfo")
    p.set_defaults(func=cmd_meminfo)
    p = sub.add_parser("xt-size")
    p.add_argument("--tables", default="nat,filter")
    p.set_defaults(func=cmd_xt_size)
    p = sub.add_parser("meminfo-delta")
    p.add_argument("before")
    p.add_argument("after")
    p.set_defaults(func=cmd_meminfo_delta)
    p = sub.add_parser("table")
    p.add_argument("results")
    p.add_argument("--facts")
    p.add_argument("--cases", required=True)
    p.add_argument("--baseline", default="direct")
    p.add_argument("--backends", type=int, default=4)
    p.add_argument("--load", default="")
    p.add_argument("--label", action="append", default=[])
    p.set_defaults(func=cmd_table)

    args = parser.parse_args()
    if getattr(args, "argv", None) and args.argv[:1] == ["--"]:
        args.argv = args.argv[1:]
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
