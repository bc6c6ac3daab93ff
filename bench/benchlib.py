#!/usr/bin/env python3
"""Helpers for the bench/*.sh scripts: run a load generator while accounting CPU, parse its output, and turn
the per-round results into the tables the scripts print (medians, min-max over rounds, same-round ratios).

Results travel as JSON lines, one per measurement; every subcommand reads or writes those.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------------------------
# CPU accounting


def proc_children():
    """pid -> parent pid for every process."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            parents[int(entry)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            pass
    return parents


def tree(roots):
    """The given pids and all their descendants that are alive."""
    parents = proc_children()
    result = {r for r in roots if r in parents}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in result and pid not in result:
                result.add(pid)
                grew = True
    return result


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def machine_busy_seconds():
    """Non-idle CPU time of the whole machine from /proc/stat (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICK


# ---------------------------------------------------------------------------------------------------------------
# BPF program run time


BPF_SYSCALL = {"x86_64": 321, "aarch64": 280}
BPF_ENABLE_STATS = 32
BPF_STATS_RUN_TIME = 0


def bpf_enable_stats():
    """Turns on the kernel's per-program run time accounting (BPF_ENABLE_STATS) for as long as the returned
    descriptor stays open; every program run then also pays for two clock reads."""
    import struct

    fd, _ = bpf_call(BPF_ENABLE_STATS, struct.pack("I", BPF_STATS_RUN_TIME))
    return fd


def bpf_run_times():
    """program id -> (name, run_time_ns, run_cnt) for every loaded program, from bpftool."""
    out = json.loads(subprocess.check_output(["bpftool", "-j", "prog", "show"]))
    return {p["id"]: (p.get("name", "?"), p.get("run_time_ns", 0), p.get("run_cnt", 0)) for p in out}


def bpf_run_delta(before, after):
    """name -> [ns, runs] spent by the programs that ran between two bpf_run_times() snapshots."""
    spent = {}
    for pid, (name, ns, runs) in after.items():
        if pid in before and runs > before[pid][2]:
            entry = spent.setdefault(name, [0, 0])
            entry[0] += ns - before[pid][1]
            entry[1] += runs - before[pid][2]
    return spent


BPF_OBJ_PIN = 6
BPF_OBJ_GET = 7
BPF_LINK_DETACH = 34
BPF_PROG_QUERY = 16
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_TCX = {"ingress": 46, "egress": 47}


def bpf_call(cmd, attr):
    """bpf(2) with attr (bytes, zero-padded to 128); returns (result, attr as the kernel left it)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(attr.ljust(128, b"\0"))
    rc = libc.syscall(BPF_SYSCALL[os.uname().machine], cmd, buf, 128)
    if rc < 0:
        raise OSError(ctypes.get_errno(), f"bpf command {cmd}")
    return rc, buf.raw


def tcx_programs(ifindex, point):
    """(id, name) of the programs in the tcx list at point (ingress or egress) of ifindex in this process's network
    namespace, in the order they run; empty on a kernel without tcx (Linux 6.6)."""
    import ctypes
    import struct

    ids = (ctypes.c_uint32 * 64)()
    try:
        query = struct.pack("IIIIQI", ifindex, BPF_TCX[point], 0, 0, ctypes.addressof(ids), len(ids))
        _, out = bpf_call(BPF_PROG_QUERY, query)
    except OSError:
        return []
    programs = []
    for prog_id in ids[: struct.unpack_from("I", out, 24)[0]]:
        fd = bpf_prog_fd(prog_id)
        info = ctypes.create_string_buffer(256)
        try:
            bpf_call(BPF_OBJ_GET_INFO_BY_FD, struct.pack("IIQ", fd, 256, ctypes.addressof(info)))
        finally:
            os.close(fd)
        programs.append((prog_id, info.raw[64:80].split(b"\0")[0].decode()))  # bpf_prog_info.name
    return programs


def bpf_prog_fd(prog_id):
    import struct

    fd, _ = bpf_call(BPF_PROG_GET_FD_BY_ID, struct.pack("I", prog_id))
    return fd


def enter_netns(name):
    import ctypes

    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000) != 0:
            raise OSError(ctypes.get_errno(), "setns")
    finally:
        os.close(fd)


def cmd_tc_to_clsact(args):
    """Moves the agent's program on a tc hook from its tcx link (pinned in the agent's link directory) to a clsact
    filter at the agent's handle and priority, what a kernel before Linux 6.6 runs: the filter goes in first, then
    the link is detached and its pin removed."""
    import ctypes
    import socket
    import struct
    import tempfile

    enter_netns(args.netns)
    ifindex = socket.if_nametoindex(args.dev)
    link_pin = ctypes.create_string_buffer(f"{args.links}/{ifindex}_{args.point}".encode())
    link, _ = bpf_call(BPF_OBJ_GET, struct.pack("Q", ctypes.addressof(link_pin)))
    info = ctypes.create_string_buffer(64)
    bpf_call(BPF_OBJ_GET_INFO_BY_FD, struct.pack("IIQ", link, 64, ctypes.addressof(info)))
    prog = bpf_prog_fd(struct.unpack_from("I", info.raw, 8)[0])  # bpf_link_info.prog_id
    pin_dir = tempfile.mkdtemp(dir="/sys/fs/bpf")
    pin = ctypes.create_string_buffer(f"{pin_dir}/prog".encode())
    try:
        bpf_call(BPF_OBJ_PIN, struct.pack("QI", ctypes.addressof(pin), prog))
        subprocess.run(["tc", "qdisc", "add", "dev", args.dev, "clsact"], capture_output=True)
        subprocess.run(
            ["tc", "filter", "add", "dev", args.dev, args.point, "prio", "1", "handle", "0x4e41", "bpf", "da",
             "object-pinned", pin.value.decode()],
            check=True,
        )
    finally:
        if os.path.exists(pin.value):
            os.unlink(pin.value)
        os.rmdir(pin_dir)
    bpf_call(BPF_LINK_DETACH, struct.pack("I", link))
    os.unlink(link_pin.value)
    os.close(link)
    os.close(prog)
    return 0


def cmd_tc_programs(args):
    """The programs on a tc hook of an interface in a network namespace: clsact filters (as tc shows them) and
    the tcx list, one "tcx <name>" line per program."""
    import socket

    filters = subprocess.run(
        ["tc", "-n", args.netns, "filter", "show", "dev", args.dev, args.point], capture_output=True, text=True
    ).stdout
    enter_netns(args.netns)
    print(filters, end="")
    for _, name in tcx_programs(socket.if_nametoindex(args.dev), args.point):
        print(f"tcx {name}")
    return 0


def read_pids(path):
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        return [int(x) for x in f.read().split() if x.strip().isdigit()]


# ---------------------------------------------------------------------------------------------------------------
# wrk


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")


def parse_wrk(out):
    result = {"rps": float("nan"), "p50_ms": float("nan"), "p99_ms": float("nan"), "requests": 0, "errors": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        result["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    if m:
        result["requests"] = int(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M)
        if m:
            result[key] = to_ms(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        result["errors"] += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        result["errors"] += int(m.group(1))
    return result


def cmd_run(args):
    """Runs a load generator (wrk or h2load) while accounting the CPU of it and of the daemons in --pids-file."""
    roots = read_pids(args.pids_file)
    before_tree = tree(roots)
    before = {pid: cpu_seconds(pid) for pid in before_tree}
    stats_fd = bpf_enable_stats() if args.bpf_stats else None
    programs0 = bpf_run_times() if args.bpf_stats else {}
    busy0, t0 = machine_busy_seconds(), time.monotonic()
    times0 = os.times()
    child = subprocess.Popen(args.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = child.communicate()
    elapsed = time.monotonic() - t0
    busy1 = machine_busy_seconds()
    programs = bpf_run_delta(programs0, bpf_run_times()) if args.bpf_stats else {}
    if stats_fd is not None:
        os.close(stats_fd)
    after_tree = tree(roots)
    by_name = {}
    for pid in after_tree:
        by_name[comm(pid)] = by_name.get(comm(pid), 0.0) + cpu_seconds(pid) - before.get(pid, 0.0)
    daemons = sum(by_name.values())
    if args.output:
        with open(args.output, "w") as log:
            log.write(out)
    # The load generator is this process's only child: its CPU (all threads) is in the children times.
    times1 = os.times()
    client = (times1.children_user + times1.children_system) - (times0.children_user + times0.children_system)
    if args.tool == "wrk":
        result = parse_wrk(out)
    else:
        result = parse_h2load(out, args.h2load_log)
    result.update(
        {
            "case": args.case,
            "mode": args.mode,
            "round": args.round,
            "seconds": elapsed,
            "cpu_daemons_s": daemons,
            "cpu_by_process_s": {k: round(v, 3) for k, v in sorted(by_name.items())},
            "cpu_client_s": client,
            "cpu_machine_s": busy1 - busy0,
            "exit": child.returncode,
        }
    )
    n = max(result["requests"], 1)
    result["cpu_us_per_req"] = (daemons + client) * 1e6 / n
    result["machine_us_per_req"] = (busy1 - busy0) * 1e6 / n
    if args.bpf_stats:
        # Time inside the BPF programs themselves (helpers and map operations included), per request and per run.
        result["bpf_by_program"] = {k: {"ns": v[0], "runs": v[1]} for k, v in sorted(programs.items())}
        result["bpf_ns_per_req"] = sum(v[0] for v in programs.values()) / n
        result["bpf_runs_per_req"] = sum(v[1] for v in programs.values()) / n
    print(json.dumps(result))
    return 0


# ---------------------------------------------------------------------------------------------------------------
# h2load


def parse_h2load(out, log_path):
    result = {"rps": float("nan"), "p50_ms": float("nan"), "p99_ms": float("nan"), "requests": 0, "errors": 0}
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    if m:
        result["rps"] = float(m.group(1))
    m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    if m:
        result["requests"] = int(m.group(1))
        result["errors"] = int(m.group(2)) + int(m.group(3))
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if m:
        result["errors"] += int(m.group(3)) + int(m.group(4))
    if log_path and os.path.exists(log_path):
        # --log-file: start time (us since epoch), status, microseconds until the end of the response.
        latencies = []
        with open(log_path) as f:
            for line in f:
                parts = line.split("\t")
                if len(parts) >= 3:
                    latencies.append(int(parts[2]) / 1000.0)
        if latencies:
            result["p50_ms"] = quantile(latencies, 0.50)
            result["p99_ms"] = quantile(latencies, 0.99)
    return result


def quantile(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    pos = q * (len(values) - 1)
    low = int(pos)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (pos - low)


# ---------------------------------------------------------------------------------------------------------------
# The agent's API over its Unix socket


class UnixHTTP:
    """A minimal keep-alive HTTP/1.1 client on a Unix socket (responses with Content-Length or chunked)."""

    def __init__(self, path):
        import socket

        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buffer = b""

    def request(self, method, path, body=None):
        data = body.encode() if isinstance(body, str) else (body or b"")
        head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(data)}\r\n"
        if data:
            head += "Content-Type: application/json\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + data)
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        header, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
        if "content-length" in fields:
            size = int(fields["content-length"])
            while len(self.buffer) < size:
                self._fill()
            payload, self.buffer = self.buffer[:size], self.buffer[size:]
        else:
            payload = b""
            while True:
                while b"\r\n" not in self.buffer:
                    self._fill()
                line, self.buffer = self.buffer.split(b"\r\n", 1)
                size = int(line.split(b";")[0], 16)
                while len(self.buffer) < size + 2:
                    self._fill()
                payload += self.buffer[:size]
                self.buffer = self.buffer[size + 2 :]
                if size == 0:
                    break
        return status, payload

    def _fill(self):
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("the agent closed the connection")
        self.buffer += chunk


def cmd_api_timed(args):
    """Sends the requests of a JSON-lines file ({"method","path","body"}) one after another on one connection,
    timing each; prints a JSON summary. Every answer must be 2xx."""
    with open(args.requests) as f:
        requests = [json.loads(line) for line in f if line.strip()]
    client = UnixHTTP(args.socket)
    cpu0 = cpu_seconds(args.pid) if args.pid else 0.0
    times = []
    for r in requests:
        body = r.get("body")
        if body is not None and not isinstance(body, str):
            body = json.dumps(body)
        t0 = time.perf_counter()
        status, payload = client.request(r["method"], r["path"], body)
        times.append((time.perf_counter() - t0) * 1000.0)
        if not 200 <= status < 300:
            print(f"{r['method']} {r['path']}: {status} {payload[:300]!r}", file=sys.stderr)
            return 1
    cpu = (cpu_seconds(args.pid) - cpu0) if args.pid else float("nan")
    print(
        json.dumps(
            {
                "label": args.label,
                "n": len(times),
                "total_ms": sum(times),
                "median_ms": quantile(times, 0.5),
                "p99_ms": quantile(times, 0.99),
                "min_ms": min(times),
                "max_ms": max(times),
                "agent_cpu_s": cpu,
                "samples_ms": times,
            }
        )
    )
    return 0


def cmd_wait_ready(args):
    """Prints "polling", then polls GET /v1/healthz on the socket every millisecond and prints the wall-clock time
    (ns) of the first 200. Started before the daemon, so its own start-up is not in the measurement."""
    print("polling", flush=True)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if os.path.exists(args.socket):
            try:
                status, _ = UnixHTTP(args.socket).request("GET", "/v1/healthz")
                if status == 200:
                    print(time.time_ns(), flush=True)
                    return 0
            except OSError:
                pass
        time.sleep(0.001)
    print("timeout", flush=True)
    return 1


def cmd_memory(args):
    """VmRSS and VmHWM of a process, in MiB, its CPU seconds, and VmRSS split into anonymous memory (heap, stacks)
    and file pages (the executable, libraries, mapped BPF maps): "rss hwm cpu anon file"."""
    values = {}
    with open(f"/proc/{args.pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                values[key] = int(rest.split()[0]) / 1024.0
    rss, hwm = values.get("VmRSS", float("nan")), values.get("VmHWM", float("nan"))
    anon, file = values.get("RssAnon", float("nan")), values.get("RssFile", float("nan"))
    print(f"{rss:.1f} {hwm:.1f} {cpu_seconds(args.pid):.2f} {anon:.1f} {file:.1f}")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# Summaries


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


def med(values):
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def fmt(value, digits=0):
    if value != value:
        return "n/a"
    return f"{value:,.{digits}f}"


def span(values, digits=0):
    values = [v for v in values if v == v]
    if not values:
        return "n/a"
    return f"{fmt(med(values), digits)} [{fmt(min(values), digits)}–{fmt(max(values), digits)}]"


def paired_ratios(rows, case, baseline, key):
    """Per round: value(case) / value(baseline) in the same round."""
    by_round = {}
    for r in rows:
        by_round.setdefault(r["round"], {})[r["case"]] = r[key]
    return [
        d[case] / d[baseline]
        for d in by_round.values()
        if case in d and baseline in d and d[baseline] and d[baseline] == d[baseline]
    ]


def ratio_cell(ratios):
    ratios = [v for v in ratios if v == v]
    if not ratios:
        return "n/a"
    return f"{med(ratios):.2f} [{min(ratios):.2f}–{max(ratios):.2f}]"


# The wrk modes of bench_wrk_rounds (bench/lib.sh) and how tables title them.
MODE_TITLES = (
    ("keepalive", "keep-alive"),
    ("close", "new connection per request (Connection: close)"),
    ("paced", "keep-alive at the same pace for every case (each connection waits 2 ms after every answer)"),
)


def bpf_cells(rows):
    """The BPF program time cells of a case's rows: µs per request, ns per program run ("–" without programs)."""
    ran = [r for r in rows if r.get("bpf_runs_per_req")]
    if not ran:
        return "– | –"
    per_run = [r["bpf_ns_per_req"] / r["bpf_runs_per_req"] for r in ran]
    return f"{span([r['bpf_ns_per_req'] / 1000 for r in ran], 2)} | {span(per_run)}"


def cmd_datapath_table(args):
    rows = load(args.results)
    labels = dict(item.split("=", 1) for item in args.label)
    cases = [c for c in args.cases.split(",") if any(r["case"] == c for r in rows)]
    out = []
    goals = []
    for mode, title in MODE_TITLES:
        mine = [r for r in rows if r["mode"] == mode]
        if not mine:
            continue
        rounds = len({r["round"] for r in mine})
        out.append(f"\n{title}: {args.load}, {rounds} rounds, medians [min–max]; ×base = same-round ratio")
        # With BPF_STATS=1: the programs' own time per request, and per run (one program run per packet and hook).
        bpf = any("bpf_ns_per_req" in r for r in mine)
        out.append(
            "| case | req/s | req/s ×base | p50 ms | p99 ms | p99 ×base | CPU µs/req | CPU ×base "
            "| machine CPU µs/req | errors |" + (" BPF µs/req | BPF ns/run |" if bpf else "")
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if bpf else ""))
        for case in cases:
            cr = [r for r in mine if r["case"] == case]
            if not cr:
                continue
            rps_ratio = paired_ratios(mine, case, args.baseline, "rps")
            p99_ratio = paired_ratios(mine, case, args.baseline, "p99_ms")
            cpu_ratio = paired_ratios(mine, case, args.baseline, "cpu_us_per_req")
            out.append(
                f"| {labels.get(case, case)} | {span([r['rps'] for r in cr])} | {ratio_cell(rps_ratio)} "
                f"| {span([r['p50_ms'] for r in cr], 3)} | {span([r['p99_ms'] for r in cr], 3)} "
                f"| {ratio_cell(p99_ratio)} | {span([r['cpu_us_per_req'] for r in cr], 1)} | {ratio_cell(cpu_ratio)} "
                f"| {span([r['machine_us_per_req'] for r in cr], 1)} | {sum(r['errors'] for r in cr)} |"
                + (f" {bpf_cells(cr)} |" if bpf else "")
            )
            if case == args.goal_case and rps_ratio and p99_ratio:
                rr, pr, cr_ = med(rps_ratio), med(p99_ratio), med(cpu_ratio)

                def verdict(ok, ratios, tolerance):
                    # A median inside the goal says little when the rounds disagree by more than the goal itself.
                    spread = max(ratios) - min(ratios)
                    word = "met" if ok else "NOT met"
                    if spread > 4 * tolerance:
                        word += f" by the median, but rounds range {min(ratios):.2f}–{max(ratios):.2f}: inconclusive"
                    return word

                goals.append(
                    f"{title}: req/s {rr:.3f}× base ({(rr - 1) * 100:+.1f}%, goal ≥ -{args.goal_rps * 100:.0f}%: "
                    f"{verdict(rr >= 1 - args.goal_rps, rps_ratio, args.goal_rps)}); p99 {pr:.3f}× base "
                    f"({(pr - 1) * 100:+.1f}%, goal ≤ +{args.goal_p99 * 100:.0f}%: "
                    f"{verdict(pr <= 1 + args.goal_p99, p99_ratio, args.goal_p99)}); CPU per request {cr_:.3f}× base "
                    f"({(cr_ - 1) * 100:+.1f}%, rounds {min(cpu_ratio):.2f}–{max(cpu_ratio):.2f})"
                )
    if goals:
        out.append(f"\nGoal for {labels.get(args.goal_case, args.goal_case)} (median of same-round ratios):")
        out.extend("  " + g for g in goals)
    print("\n".join(out))
    return 0


def cmd_l7_goals(args):
    """Issue 15's goals from bench/l7.sh's results, by medians of same-round ratios: l7 against l4 (req/s ≥ 0.90×
    and p99 ≤ 1.10× on keep-alive, CPU per request ≤ 1.15× in both modes) and l7 against haproxy (better on every
    figure: more req/s, lower p50, p99 and CPU per request)."""
    rows = load(args.results)
    out = ["Goals for HTTP rules in the kernel (l7), medians of same-round ratios [min–max over rounds]:"]
    met_all = True
    for mode, title in MODE_TITLES:
        title = title.split(" (")[0]
        mine = [r for r in rows if r["mode"] == mode]
        if not any(r["case"] == args.case for r in mine):
            continue
        checks = []
        if any(r["case"] == args.l4 for r in mine):
            keepalive = mode == "keepalive"
            figures = (
                ("req/s", "rps", (">=", 0.90) if keepalive else None),
                ("p50", "p50_ms", None),
                ("p99", "p99_ms", ("<=", 1.10) if keepalive else None),
                ("CPU/req", "cpu_us_per_req", ("<=", 1.15)),
                # Work the kernel defers to kworkers (the psock backlog) is in no process counted above.
                ("machine CPU/req", "machine_us_per_req", None),
            )
            for label, key, goal in figures:
                ratios = paired_ratios(mine, args.case, args.l4, key)
                if not ratios:
                    continue
                cell = f"{label} {ratio_cell(ratios)}× l4"
                if goal:
                    op, bound = goal
                    ok = med(ratios) >= bound if op == ">=" else med(ratios) <= bound
                    met_all &= ok
                    cell += f" (goal {op} {bound:.2f}: {'met' if ok else 'NOT met'})"
                checks.append(cell)
        if any(r["case"] == args.proxy for r in mine):
            # Paced, every case is offered the same rate: its req/s says nothing of either.
            figures = (("req/s", "rps", ">"), ("p50", "p50_ms", "<"), ("p99", "p99_ms", "<"),
                       ("CPU/req", "cpu_us_per_req", "<"))
            for label, key, better in figures[1:] if mode == "paced" else figures:
                ratios = paired_ratios(mine, args.case, args.proxy, key)
                if not ratios:
                    continue
                ok = med(ratios) > 1 if better == ">" else med(ratios) < 1
                met_all &= ok
                checks.append(f"{label} {ratio_cell(ratios)}× haproxy ({'better' if ok else 'NOT better'})")
        out.append(f"  {title}: " + "; ".join(checks))
    out.append(f"  all goals: {'met' if met_all else 'NOT all met'}")
    print("\n".join(out))
    return 0


def cmd_api_table(args):
    """One table per group; the first case is the base (nginx). A group with a bare libmicrohttpd case ("mhd-...")
    gets a second ratio column against it: what the agent adds to the library it is built on."""
    rows = load(args.results)
    labels = dict(item.split("=", 1) for item in args.label)
    out = []
    for group in args.groups.split(";"):
        base, *others = group.split(",")
        library = next((c for c in others if c.startswith("mhd-")), None)
        rounds = len({r["round"] for r in rows if r["case"] == base})
        out.append(f"\n{labels.get(base + ':title', base)}: {args.load}, {rounds} rounds, medians [min–max]")
        extra = " req/s ×bare libmicrohttpd |" if library else ""
        out.append(f"| server | req/s | req/s ×nginx |{extra} p50 ms | p99 ms | p99 ×nginx | CPU µs/req | errors |")
        out.append("|---|---|---|" + ("---|" if library else "") + "---|---|---|---|---|")
        for case in [base] + others:
            cr = [r for r in rows if r["case"] == case]
            if not cr:
                continue
            versus = f" {ratio_cell(paired_ratios(rows, case, library, 'rps'))} |" if library else ""
            out.append(
                f"| {labels.get(case, case)} | {span([r['rps'] for r in cr])} "
                f"| {ratio_cell(paired_ratios(rows, case, base, 'rps'))} |{versus}"
                f" {span([r['p50_ms'] for r in cr], 3)} | {span([r['p99_ms'] for r in cr], 3)} "
                f"| {ratio_cell(paired_ratios(rows, case, base, 'p99_ms'))} "
                f"| {span([r['cpu_us_per_req'] for r in cr], 1)} | {sum(r['errors'] for r in cr)} |"
            )
    print("\n".join(out))
    return 0


def cmd_brief(args):
    """A one-line summary of the last JSON line on stdin, for progress logs."""
    lines = [line for line in sys.stdin.read().splitlines() if line.startswith("{")]
    if lines:
        r = json.loads(lines[-1])
        if "samples_ms" in r:
            print(f"n={r['n']} median {r['median_ms']:.1f} ms, max {r['max_ms']:.1f} ms, total {r['total_ms']:.0f} ms")
            return 0
        bpf = f", BPF {r['bpf_ns_per_req'] / 1000:.2f} µs/req" if r.get("bpf_runs_per_req") else ""
        print(f"{r['rps']:,.0f} req/s, p99 {r['p99_ms']:.2f} ms, {r['cpu_us_per_req']:.1f} CPU µs/req{bpf}, "
              f"{r['errors']} errors")
    return 0


def cmd_stats(args):
    """Median [min–max] of numbers on stdin."""
    values = [float(x) for x in sys.stdin.read().split()]
    print(span(values, args.digits))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a load generator with CPU accounting; prints one JSON line")
    run.add_argument("--tool", choices=["wrk", "h2load"], default="wrk")
    run.add_argument("--case", required=True)
    run.add_argument("--mode", default="")
    run.add_argument("--round", type=int, default=1)
    run.add_argument("--pids-file", help="pids of the daemons whose CPU counts (their children count too)")
    run.add_argument("--output", help="file for the load generator's own output")
    run.add_argument("--h2load-log", help="h2load --log-file path, for latency percentiles")
    run.add_argument(
        "--bpf-stats", action="store_true", help="also account the run time of every BPF program that ran"
    )
    run.add_argument("argv", nargs=argparse.REMAINDER, help="-- the load generator's command line")
    run.set_defaults(func=cmd_run)

    tcp = sub.add_parser("tc-programs", help="the programs on a tc hook: clsact filters and the tcx list")
    tcp.add_argument("netns")
    tcp.add_argument("dev")
    tcp.add_argument("point", choices=["ingress", "egress"])
    tcp.set_defaults(func=cmd_tc_programs)

    move = sub.add_parser("tc-to-clsact", help="move the agent's program on a tc hook from tcx to a clsact filter")
    move.add_argument("netns")
    move.add_argument("dev")
    move.add_argument("point", choices=["ingress", "egress"])
    move.add_argument("--links", required=True, help="the agent's tcx link directory (<pin root>/tc-links)")
    move.set_defaults(func=cmd_tc_to_clsact)

    table = sub.add_parser("datapath-table")
    table.add_argument("results")
    table.add_argument("--cases", required=True)
    table.add_argument("--baseline", default="base")
    table.add_argument("--load", default="")
    table.add_argument("--label", action="append", default=[])
    table.add_argument("--goal-case", default="agent")
    table.add_argument("--goal-rps", type=float, default=0.03)
    table.add_argument("--goal-p99", type=float, default=0.05)
    table.set_defaults(func=cmd_datapath_table)

    api = sub.add_parser("api-table")
    api.add_argument("results")
    api.add_argument("--groups", required=True, help="baseline,case,...;baseline,case,...")
    api.add_argument("--load", default="")
    api.add_argument("--label", action="append", default=[])
    api.set_defaults(func=cmd_api_table)

    l7 = sub.add_parser("l7-goals", help="issue 15's goals from bench/l7.sh's results")
    l7.add_argument("results")
    l7.add_argument("--case", default="l7")
    l7.add_argument("--l4", default="l4")
    l7.add_argument("--proxy", default="haproxy")
    l7.set_defaults(func=cmd_l7_goals)

    timed = sub.add_parser("api-timed")
    timed.add_argument("--socket", required=True)
    timed.add_argument("--requests", required=True)
    timed.add_argument("--label", default="")
    timed.add_argument("--pid", type=int)
    timed.set_defaults(func=cmd_api_timed)

    ready = sub.add_parser("wait-ready")
    ready.add_argument("--socket", required=True)
    ready.add_argument("--timeout", type=float, default=60.0)
    ready.set_defaults(func=cmd_wait_ready)

    memory = sub.add_parser("memory")
    memory.add_argument("pid", type=int)
    memory.set_defaults(func=cmd_memory)

    brief = sub.add_parser("brief")
    brief.set_defaults(func=cmd_brief)

    stats = sub.add_parser("stats")
    stats.add_argument("--digits", type=int, default=1)
    stats.set_defaults(func=cmd_stats)

    args = parser.parse_args()
    if getattr(args, "argv", None) and args.argv[:1] == ["--"]:
        args.argv = args.argv[1:]
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
