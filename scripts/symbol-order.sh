#!/bin/bash
# Regenerates BuildTools/nodeagent.order, the layout the linker gives nodeagent's code: the functions the agent runs,
# first. The kernel maps an executable's pages 64 KiB around each page fault, so code the agent uses scattered over
# the binary is resident nearly whole; laid out together it is not (BENCHMARKS.md §3 "Memory").
#
# Runs the control-plane benchmark (endpoints, policy imports and changes, a restart) with the release agent under
# valgrind's callgrind, and lists every function of the binary that ran, in the order callgrind first met them.
# Names that later stop existing are ignored by the linker, so a stale file only lays out less. Needs root and
# valgrind; takes about a minute.
#
# Usage: scripts/symbol-order.sh [NODEAGENT_BIN [NODECTL_BIN]] (default: a release build of both)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "symbol-order: valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
agent=${1:-}
nodectl=${2:-}
if [ -z "$agent" ]; then
    swift build -c release --static-swift-stdlib --product nodeagent
    swift build -c release --static-swift-stdlib --product nodectl
    agent=.build/release/nodeagent
    nodectl=.build/release/nodectl
fi
work=$(mktemp -d /tmp/symbol-order.XXXXXX)
trap 'rm -rf "$work"' EXIT
# callgrind cannot read the DWARF of this toolchain; the symbol table is all it needs.
cp "$agent" "$work/agent"
strip --strip-debug "$work/agent"
cat >"$work/agent.sh" <<WRAP
#!/bin/bash
exec valgrind --tool=callgrind --demangle=no --callgrind-out-file=$work/callgrind.%p.out $work/agent "\$@" \
    2>>$work/valgrind.log
WRAP
chmod +x "$work/agent.sh"
ENDPOINTS=100 RULES=50 ROUNDS=1 CHANGES=4 EXTRA=10 BENCH_NO_BUILD=1 NODEAGENT_BIN="$work/agent.sh" \
    NODECTL_BIN="${nodectl:-.build/release/nodectl}" bash bench/control-plane.sh >"$work/bench.log" 2>&1 \
    || { tail -20 "$work/bench.log" >&2; exit 1; }
nm --defined-only "$work/agent" | awk '$2 ~ /[tTwW]/ {print $3}' >"$work/symbols"
python3 - "$work" <<'PY' >BuildTools/nodeagent.order
import glob, re, sys
work = sys.argv[1]
defined = set(open(f"{work}/symbols").read().split())
seen = set()
for path in sorted(glob.glob(f"{work}/callgrind.*.out")):
    for line in open(path, errors="replace"):
        match = re.match(r"^c?fn=\(\d+\) (\S+)$", line.rstrip("\n"))
        if match and match.group(1) in defined and match.group(1) not in seen:
            seen.add(match.group(1))
            print(match.group(1))
PY
echo "BuildTools/nodeagent.order: $(wc -l <BuildTools/nodeagent.order) functions" >&2
