#!/usr/bin/env bash
# Control-plane benchmark: nodeagent in a node namespace with ENDPOINTS endpoints (veth pairs inside the node
# namespace: the agent only needs the host-side interface), each with a label set of its own (as many
# identities), and RULES CiliumNetworkPolicy documents. Measured through the API over the Unix socket, one
# keep-alive connection:
#   - endpoint create (PUT /v1/endpoint/{id}) -> answered = programs attached and maps written, without and with
#     policy in force;
#   - full policy import (PUT /v1/policy, all documents) -> answered = every endpoint's map programmed;
#   - one-rule change (PUT /v1/policy, one document) -> answered = maps programmed;
#   - agent RSS (VmRSS, VmHWM) and CPU; restart to ready (exec -> first 200 on /v1/healthz) with that state.
# Goals: one-rule change < 100 ms, RSS < 30 MiB.
#
# Environment: ENDPOINTS (1000), RULES (500), ROUNDS (3: full imports and restarts), CHANGES (20 one-rule changes),
# EXTRA (20 endpoints created with policy in force), BENCH_OUT, NODEAGENT_BIN, NODECTL_BIN, BENCH_NO_BUILD=1.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ENDPOINTS=${ENDPOINTS:-1000}
RULES=${RULES:-500}
ROUNDS=${ROUNDS:-3}
CHANGES=${CHANGES:-20}
EXTRA=${EXTRA:-20}
((RULES * 2 <= ENDPOINTS)) || bench_die "RULES must be at most ENDPOINTS / 2 (each rule names two endpoints' apps)"

bench_init
bench_packages python3 curl iproute2 util-linux
bench_build_agent
NODE=$BENCH_PREFIX-node
W=$BENCH_WORK
RESULTS=$W/control-plane.jsonl
: >"$RESULTS"

bench_node "$NODE"
# veth pairs with both ends in the node namespace (dummy interfaces would do, but not every kernel has them).
bench_log "creating $((ENDPOINTS + EXTRA)) veth pairs in $NODE"
for ((i = 0; i < ENDPOINTS + EXTRA; i++)); do
    echo "link add ${BENCH_PREFIX}d$i type veth peer name ${BENCH_PREFIX}p$i"
    echo "link set ${BENCH_PREFIX}d$i up"
done | ip -n "$NODE" -batch -

# Request files, one JSON request a line. Endpoint i: app=svc-i in namespace ns-(i%10), tier backend for the first
# half and web for the second, so every endpoint has an identity of its own. Policy j (namespace ns-(j%10)) selects
# svc-j and allows ingress from svc-(j+half) on 8080 and from every web pod of its namespace on 9090.
python3 - "$W" "$BENCH_PREFIX" "$ENDPOINTS" "$RULES" "$EXTRA" "$CHANGES" <<'EOF'
import json, sys
w, prefix = sys.argv[1], sys.argv[2]
endpoints, rules, extra, changes = (int(x) for x in sys.argv[3:7])
half = endpoints // 2

def endpoint(i, app, ns, tier):
    return {"method": "PUT", "path": f"/v1/endpoint/{i + 1}", "body": {
        "interface-name": f"{prefix}d{i}", "addressing": {"ipv4": f"10.250.{i // 250}.{i % 250 + 1}"},
        "k8s-namespace": ns, "k8s-pod-name": f"{app}-0", "labels": [f"k8s:app={app}", f"k8s:tier={tier}"]}}

def policy(j, port=8080):
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": {"name": f"allow-{j}", "namespace": f"ns-{j % 10}"},
            "spec": {"endpointSelector": {"matchLabels": {"app": f"svc-{j}"}},
                     "ingress": [
                         {"fromEndpoints": [{"matchLabels": {"app": f"svc-{j + half}"}}],
                          "toPorts": [{"ports": [{"port": str(port), "protocol": "TCP"}]}]},
                         {"fromEndpoints": [{"matchLabels": {"tier": "web"}}],
                          "toPorts": [{"ports": [{"port": "9090", "protocol": "TCP"}]}]}]}}

def write(name, requests):
    with open(f"{w}/{name}.jsonl", "w") as f:
        for r in requests:
            f.write(json.dumps(r) + "\n")

write("endpoints", [endpoint(i, f"svc-{i}", f"ns-{i % 10}", "backend" if i < half else "web")
                    for i in range(endpoints)])
# Web pods in ns-0 arriving while policy is in force: each is a peer of every ns-0 policy's second rule.
write("extra", [endpoint(endpoints + k, f"late-{k}", "ns-0", "web") for k in range(extra)])
write("extra-delete", [{"method": "DELETE", "path": f"/v1/endpoint/{endpoints + k + 1}"} for k in range(extra)])
write("import", [{"method": "PUT", "path": "/v1/policy", "body": [policy(j) for j in range(rules)]}])
write("delete-all", [{"method": "DELETE", "path": "/v1/policy?all=true"}])
# One-rule changes: policy allow-0 again with its first rule's port moved to 8081 and back.
write("changes", [{"method": "PUT", "path": "/v1/policy", "body": policy(0, 8081 if k % 2 == 0 else 8080)}
                  for k in range(changes)])
EOF

timed() { # LABEL FILE: runs the requests, appends the summary
    bench_py api-timed --socket "$AGENT_SOCK" --requests "$W/$2.jsonl" --label "$1" --pid "$AGENT_PID" >>"$RESULTS" \
        || bench_die "$1: a request failed"
    bench_log "$1: $(tail -1 "$RESULTS" | bench_py brief)"
}
memory() { # LABEL
    local rss hwm cpu anon file
    read -r rss hwm cpu anon file < <(bench_py memory "$AGENT_PID")
    echo "{\"label\": \"memory: $1\", \"rss_mib\": $rss, \"hwm_mib\": $hwm, \"cpu_s\": $cpu}" >>"$RESULTS"
    bench_log "memory $1: VmRSS $rss MiB (anonymous $anon, file $file), VmHWM $hwm MiB, CPU $cpu s"
}

bench_log "machine: $(bench_machine)"
bench_agent_start "$NODE" "$W/agent"
echo "{\"label\": \"start, empty state\", \"ready_ms\": $AGENT_READY_MS}" >>"$RESULTS"
bench_log "cold start to ready: $AGENT_READY_MS ms"
memory "started, empty"

timed "endpoint create, no policy" endpoints
# The last endpoint must be enforced by now: its interface has both programs.
last_if=${BENCH_PREFIX}d$((ENDPOINTS - 1))
[[ $(bench_py tc-programs "$NODE" "$last_if" ingress) == *from_endpoint* ]] || bench_die "no program on $last_if"
[[ $(bench_py tc-programs "$NODE" "$last_if" egress) == *to_endpoint* ]] || bench_die "no program on $last_if egress"
memory "$ENDPOINTS endpoints"

for ((round = 1; round <= ROUNDS; round++)); do
    [ "$round" -gt 1 ] && timed "delete all policies" delete-all
    timed "full import, $RULES rules" import
done
entries=$(bench_api GET /v1/endpoint/1/policy \
    | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["entries"]))')
total_entries=$(for id in 1 2 3; do bench_api GET "/v1/endpoint/$id/policy"; echo; done \
    | python3 -c 'import json,sys; print(sum(len(json.loads(l)["entries"]) for l in sys.stdin if l.strip()))')
bench_log "endpoint 1 holds $entries policy entries (endpoints 1-3: $total_entries)"
memory "after imports"

timed "one-rule change" changes
# The last change must be in the map: endpoint 1 (svc-0) allows its peer on the port that change set.
want=$([ $((CHANGES % 2)) = 1 ] && echo 8081 || echo 8080)
bench_api GET /v1/endpoint/1/policy | python3 -c "
import json, sys
entries = json.load(sys.stdin)['entries']
ports = {e['port'] for e in entries if e['direction'] == 'ingress'}
sys.exit(0 if $want in ports and {8080, 8081} - {$want} & ports == set() else 1)" \
    || bench_die "endpoint 1's policy does not show the last change (port $want)"

timed "endpoint create, $RULES rules in force" extra
timed "endpoint delete, $RULES rules in force" extra-delete
memory "after changes"

# The agent moves hooks from clsact filters to tcx links a second after hooks stop changing, one at a time: idle
# is measured once every endpoint's two hooks are there (an agent older than that makes no link directory).
moves_from=$SECONDS
if bench_kernel_has_tcx && bench_wait_for 5 test -d "$AGENT_BPF/tc-links"; then
    until [ "$(find "$AGENT_BPF/tc-links" -mindepth 1 2>/dev/null | wc -l)" -ge $((2 * ENDPOINTS)) ]; do
        [ $((SECONDS - moves_from)) -lt 600 ] || bench_die "the agent's tc hooks did not all move onto tcx links"
        sleep 0.2
    done
    echo "{\"label\": \"tcx moves\", \"seconds\": $((SECONDS - moves_from))}" >>"$RESULTS"
    bench_log "every hook on a tcx link $((SECONDS - moves_from)) s after the last endpoint change"
fi
cpu0=$(bench_py memory "$AGENT_PID" | cut -d' ' -f3)
sleep 10
cpu1=$(bench_py memory "$AGENT_PID" | cut -d' ' -f3)
idle=$(python3 -c "print(f'{($cpu1 - $cpu0) / 10 * 100:.2f}')")
echo "{\"label\": \"idle CPU over 10 s\", \"percent\": $idle}" >>"$RESULTS"
bench_log "idle: $idle % of a core"

for ((round = 1; round <= ROUNDS; round++)); do
    bench_agent_stop
    bench_agent_start "$NODE" "$W/agent"
    count=$(bench_api GET /v1/healthz | python3 -c 'import json,sys; print(json.load(sys.stdin)["endpoints"])')
    [ "$count" = "$ENDPOINTS" ] || bench_die "restarted agent reports $count endpoints, expected $ENDPOINTS"
    echo "{\"label\": \"restart to ready\", \"ready_ms\": $AGENT_READY_MS}" >>"$RESULTS"
    bench_log "restart $round to ready: $AGENT_READY_MS ms ($count endpoints restored)"
done
memory "restarted with state"

python3 - "$RESULTS" "$ENDPOINTS" "$RULES" "$entries" "$(bench_machine)" <<'EOF' | tee "$W/control-plane.txt"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
endpoints, rules, entries, machine = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
def span(v, d=1):
    return f"{statistics.median(v):.{d}f} [{min(v):.{d}f}–{max(v):.{d}f}]" if v else "n/a"
print(f"control plane: {endpoints} endpoints (veths), {endpoints} identities, {rules} rules "
      f"({entries} policy entries on endpoint 1); {machine}")
print("Times are per API request, answered after the maps are programmed; median [min–max] over requests.\n")
print("| operation | requests | median ms [min–max] | p99 ms | agent CPU s (all requests) |")
print("|---|---|---|---|---|")
timed = {}
for r in rows:
    if "samples_ms" in r:
        timed.setdefault(r["label"], []).append(r)
for label, rs in timed.items():
    samples = [s for r in rs for s in r["samples_ms"]]
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(round(0.99 * (len(samples) - 1))))]
    print(f"| {label} | {len(samples)} | {span(samples)} | {p99:.1f} | {sum(r['agent_cpu_s'] for r in rs):.2f} |")
print()
print("| agent | value |")
print("|---|---|")
for r in rows:
    if r["label"].startswith("memory"):
        print(f"| {r['label']} | VmRSS {r['rss_mib']:.1f} MiB, VmHWM {r['hwm_mib']:.1f} MiB, "
              f"CPU so far {r['cpu_s']:.2f} s |")
for r in rows:
    if r["label"] == "start, empty state":
        print(f"| start to ready, empty state | {r['ready_ms']} ms |")
restarts = [r["ready_ms"] for r in rows if r["label"] == "restart to ready"]
if restarts:
    print(f"| restart to ready, {endpoints} endpoints + {rules} rules restored | {span(restarts, 0)} ms "
          f"over {len(restarts)} restarts |")
for r in rows:
    if r["label"] == "tcx moves":
        print(f"| every hook on a tcx link, after the last endpoint change | {r['seconds']} s |")
for r in rows:
    if r["label"] == "idle CPU over 10 s":
        print(f"| idle CPU | {r['percent']} % of a core |")
print()
change = [s for r in timed.get("one-rule change", []) for s in r["samples_ms"]]
hwm = max((r["hwm_mib"] for r in rows if r["label"].startswith("memory")), default=float("nan"))
rss = max((r["rss_mib"] for r in rows if r["label"].startswith("memory")), default=float("nan"))
if change:
    m = statistics.median(change)
    print(f"Goal one-rule change < 100 ms: median {m:.1f} ms, max {max(change):.1f} ms: "
          f"{'met' if max(change) < 100 else ('met by the median, not by the max' if m < 100 else 'NOT met')}")
print(f"Goal RSS < 30 MiB: peak VmRSS {rss:.1f} MiB, VmHWM {hwm:.1f} MiB: {'met' if hwm < 30 else 'NOT met'}")
EOF
if [ -n "${BENCH_OUT:-}" ]; then
    mkdir -p "$BENCH_OUT"
    cp "$W/control-plane.txt" "$RESULTS" "$BENCH_OUT/"
fi
