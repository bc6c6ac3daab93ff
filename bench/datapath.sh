#!/usr/bin/env bash
# Datapath benchmark: a client pod -> nginx in a server pod, routed through a node namespace by two veth pairs
# (the wiring of the end-to-end tests). The cases run interleaved in every round, each with keep-alive and with a
# new connection per request, so a slow moment of this shared machine hits all of them alike:
#   base          no policy at all
#   agent         nodeagent enforcing the seed article's policies (default-deny + allow frontend -> backend:8080)
#   agent-clsact  the same, its four programs moved from the tcx lists (Linux 6.6) to clsact filters, as kernels
#                 before 6.6 run them (the kernel's classifier layers around each program are the difference)
#   agent-kernel  the agent with `host-routing: kernel`: packets between the pods through the node's IP stack and
#                 both pods' programs, as before the agent delivered them itself (`bpf`, the default, in `agent`)
#   ipt           the same policy as iptables rules in the node's FORWARD chain behind 10,000 other rules, the
#                 ESTABLISHED rule last (what a naive per-rule engine does)
#   ipt-estfirst  the same, ESTABLISHED rule first
#   proxy         haproxy (tcp mode) in the server pod in front of nginx: the sidecar stand-in
#   proxy2        haproxy in both pods: two sidecars, as a mesh has
# Reported: req/s, p50, p99 (wrk --latency), CPU per request, and same-round ratios to `base`.
#
# Environment: ROUNDS (3), DURATION (seconds per run, 10), CASES (comma list, all above), THREADS (2),
# CONNECTIONS (50), RULES (10000), ALLOWED_FLOW_SAMPLING (the agent's runtime option: 1 reports every allowed new
# connection, the default; N one in N; 0 none), BENCH_OUT (directory for the table and raw results), NODEAGENT_BIN,
# NODECTL_BIN, BENCH_NO_BUILD=1 (use existing binaries), BPF_STATS=1 (also the time spent inside BPF programs per
# request and per program run, from the kernel's run-time accounting, which adds two clock reads to every run and
# so slows the agent case a little).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CASES=${CASES:-base,agent,agent-kernel,agent-clsact,ipt,ipt-estfirst,proxy,proxy2}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-50}
RULES=${RULES:-10000}
FIXTURES=$REPO_DIR/Tests/EndToEndTests/Fixtures

bench_init
bench_packages wrk nginx-light haproxy iptables nftables python3 curl iproute2 util-linux
[[ ,$CASES, == *,agent* ]] && bench_build_agent

NODE=$BENCH_PREFIX-node
CLIENT=$BENCH_PREFIX-client
SERVER=$BENCH_PREFIX-server
CLIENT_IF=${BENCH_PREFIX}c
SERVER_IF=${BENCH_PREFIX}s
GATEWAY=10.245.0.1
CLIENT_IP=10.245.1.10
SERVER_IP=10.245.1.20
PIDS=$BENCH_WORK/pids
RESULTS=$BENCH_WORK/results.jsonl
touch "$PIDS" "$RESULTS"

bench_log "topology: $CLIENT ($CLIENT_IP) -> $NODE -> $SERVER ($SERVER_IP)"
bench_node "$NODE"
bench_pod "$NODE" "$CLIENT" "$CLIENT_IF" "$CLIENT_IP" "$GATEWAY"
bench_pod "$NODE" "$SERVER" "$SERVER_IF" "$SERVER_IP" "$GATEWAY"

# nginx answers on :8080 for everyone and on 127.0.0.1:8081 for the sidecar in front of it.
mkdir -p "$BENCH_WORK/nginx"
bench_nginx "$SERVER" "$BENCH_WORK/nginx" 8080 127.0.0.1:8081
cat "$BENCH_WORK/nginx/pids" >>"$PIDS"

# The sidecars: tcp mode, as a mesh proxy does for plain TCP; the server's on :8090 in front of nginx, the client's
# on 127.0.0.1:15001 towards the server's (the mesh's outbound -> inbound hop).
haproxy_config() { # BIND TARGET
    cat <<EOF
global
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend sidecar
    bind $1
    default_backend app
backend app
    server app $2
EOF
}
if [[ ,$CASES, == *,proxy* ]]; then
    haproxy_config "$SERVER_IP:8090" 127.0.0.1:8081 >"$BENCH_WORK/haproxy-server.cfg"
    bench_start "$SERVER" "$PIDS" "$BENCH_WORK/haproxy-server.log" haproxy -db -f "$BENCH_WORK/haproxy-server.cfg"
    haproxy_config 127.0.0.1:15001 "$SERVER_IP:8090" >"$BENCH_WORK/haproxy-client.cfg"
    bench_start "$CLIENT" "$PIDS" "$BENCH_WORK/haproxy-client.log" haproxy -db -f "$BENCH_WORK/haproxy-client.cfg"
fi

# status CODE of GET URL from the client pod ("000" when nothing answers within a second).
client_get() {
    ip netns exec "$CLIENT" curl -s -o /dev/null -w '%{http_code}' --connect-timeout 1 --max-time 2 "$1" || true
}
answers() { test "$(client_get "$1")" = 200; }
bench_wait_for 10 answers "http://$SERVER_IP:8080/" || bench_die "nginx is not reachable from the client"
if [[ ,$CASES, == *,proxy* ]]; then
    bench_wait_for 10 answers "http://127.0.0.1:15001/" || bench_die "nginx is not reachable through the sidecars"
fi

# --- case setup and teardown -------------------------------------------------------------------------------

# The node namespace must be back to plain forwarding before `base`: no tc programs, no netfilter rules.
assert_plain() {
    local filters
    filters=$(bench_py tc-programs "$NODE" "$CLIENT_IF" ingress; bench_py tc-programs "$NODE" "$SERVER_IF" egress)
    [ -z "$filters" ] || bench_die "tc programs left on the pod interfaces: $filters"
    [ -z "$(ip netns exec "$NODE" nft list ruleset)" ] || bench_die "netfilter rules left in $NODE"
}

agent_on() {
    bench_agent_start "$NODE" "$BENCH_WORK/agent"
    bench_api PUT /v1/endpoint/1 "{\"interface-name\":\"$CLIENT_IF\",\"addressing\":{\"ipv4\":\"$CLIENT_IP\"},
        \"k8s-namespace\":\"web-tier\",\"k8s-pod-name\":\"frontend-0\",
        \"labels\":[\"k8s:app=frontend\"]}" >/dev/null
    bench_api PUT /v1/endpoint/2 "{\"interface-name\":\"$SERVER_IF\",\"addressing\":{\"ipv4\":\"$SERVER_IP\"},
        \"k8s-namespace\":\"api-tier\",\"k8s-pod-name\":\"backend-api-0\",
        \"labels\":[\"k8s:app=backend-api\"]}" >/dev/null
    bench_nodectl policy import "$FIXTURES/default-deny-all.yaml" "$FIXTURES/allow-traffic-policy.yaml" >/dev/null
    bench_api PATCH /v1/config "{\"allowed-flow-sampling\":${ALLOWED_FLOW_SAMPLING:-1}}" >/dev/null
    echo "$AGENT_PID" >>"$PIDS.now"
    # On Linux 6.6 and later the agent attaches clsact filters at once and moves each hook onto a tcx link a second
    # after hooks stop changing: the rounds measure what a steady node runs.
    if bench_kernel_has_tcx; then
        bench_wait_for 20 agent_on_links || bench_die "the agent's tc hooks did not move onto tcx links"
    fi
}

# Every hook of the two pod interfaces on a tcx link, none left on the agent's clsact filter (handle 0x4e41).
agent_on_links() {
    local dev point programs
    for dev in "$CLIENT_IF" "$SERVER_IF"; do
        for point in ingress egress; do
            programs=$(bench_py tc-programs "$NODE" "$dev" "$point")
            [[ $programs == *tcx* && $programs != *0x4e41* ]] || return 1
        done
    done
}

# The agent leaving delivery between the pods to the node's routing.
agent_kernel_on() {
    agent_on
    bench_api PATCH /v1/config '{"host-routing":"kernel"}' >/dev/null
}

agent_off() {
    bench_agent_remove
}

# The agent's programs moved to clsact filters at its handle and priority, where `nodeagent cleanup` finds them.
agent_clsact_on() {
    agent_on
    local dev point
    for dev in "$CLIENT_IF" "$SERVER_IF"; do
        for point in ingress egress; do
            bench_py tc-to-clsact "$NODE" "$dev" "$point" --links "$AGENT_BPF/tc-links"
        done
    done
}

# The policy as iptables rules in the node's FORWARD chain (default DROP): RULES allow rules for other clients
# first, then the frontend -> backend:8080 allow, and the rule that lets replies through last or first.
ipt_on() {
    local where=$1
    python3 - "$RULES" "$CLIENT_IP" "$SERVER_IP" "$where" >"$BENCH_WORK/rules.txt" <<'EOF'
import sys
rules, client, server, where = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
established = "-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
print("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]")
if where == "first":
    print(established)
for i in range(rules):
    print(f"-A FORWARD -s 10.246.{i >> 8 & 255}.{i & 255}/32 -d {server}/32 -p tcp -m tcp --dport 8080 -j ACCEPT")
print(f"-A FORWARD -s {client}/32 -d {server}/32 -p tcp -m tcp --dport 8080 -j ACCEPT")
if where == "last":
    print(established)
print("COMMIT")
EOF
    ip netns exec "$NODE" iptables-restore <"$BENCH_WORK/rules.txt"
}

# Removes the tables, so the forward hook and conntrack are gone from the node namespace again.
ipt_off() {
    ip netns exec "$NODE" nft flush ruleset
}

case_on() {
    : >"$PIDS.now"
    case $1 in
        base) assert_plain ;;
        agent) agent_on ;;
        agent-clsact) agent_clsact_on ;;
        agent-kernel) agent_kernel_on ;;
        ipt) ipt_on last ;;
        ipt-estfirst) ipt_on first ;;
        proxy | proxy2) ;;
        *) bench_die "unknown case $1 (known: base, agent, agent-kernel, agent-clsact, ipt, ipt-estfirst, proxy," \
            "proxy2)" ;;
    esac
    cat "$PIDS" >>"$PIDS.now"
    local target
    target=$(case_url "$1")
    [ "$(client_get "$target")" = 200 ] || bench_die "$1: $target does not answer 200"
    # Enforcing cases must drop what the policy does not allow: nothing listens on 9090, so without policy the
    # connection is refused (curl exit 7), with it the SYN is dropped and curl times out (exit 28).
    local rc=0 want=7
    [[ $1 == agent* || $1 == ipt* ]] && want=28
    ip netns exec "$CLIENT" curl -s -o /dev/null --connect-timeout 1 "http://$SERVER_IP:9090/" || rc=$?
    [ "$rc" = "$want" ] || bench_die "$1: a connection to port 9090 ended with curl exit $rc, expected $want"
}

case_off() {
    case $1 in
        agent | agent-clsact | agent-kernel) agent_off ;;
        ipt | ipt-estfirst) ipt_off ;;
    esac
}

case_url() {
    case $1 in
        proxy) echo "http://$SERVER_IP:8090/" ;;
        proxy2) echo "http://127.0.0.1:15001/" ;;
        *) echo "http://$SERVER_IP:8080/" ;;
    esac
}

# --- the rounds ------------------------------------------------------------------------------------------------

bench_wrk_rounds "$PIDS.now"

table=$(bench_py datapath-table "$RESULTS" --cases "$CASES" --baseline base --goal-case agent \
    --load "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s" \
    --label "base=no policy (baseline)" --label "agent=nodeagent, seed L4 policies" \
    --label "agent-clsact=nodeagent, its programs on clsact filters" \
    --label "ipt=iptables, $RULES rules before the allow, ESTABLISHED last" \
    --label "ipt-estfirst=iptables, $RULES rules, ESTABLISHED first" \
    --label "proxy=haproxy in the server pod (one sidecar)" --label "proxy2=haproxy in both pods (two sidecars)")
{
    echo "datapath: client pod -> node namespace -> nginx pod (612-byte page); $(bench_machine)"
    echo "CPU µs/req: utime+stime of wrk, nginx, haproxy and nodeagent over the run / requests (softirq work"
    echo "lands in whichever of them was running); machine CPU: all non-idle time in /proc/stat, other load included."
    echo "$table"
} | tee "$BENCH_WORK/datapath.txt"
if [ -n "${BENCH_OUT:-}" ]; then
    mkdir -p "$BENCH_OUT"
    cp "$BENCH_WORK/datapath.txt" "$RESULTS" "$BENCH_OUT/" && mv "$BENCH_OUT/results.jsonl" "$BENCH_OUT/datapath.jsonl"
fi
