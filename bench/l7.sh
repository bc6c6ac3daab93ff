#!/usr/bin/env bash
# HTTP rules benchmark: a client pod -> nginx in a server pod, routed through a node namespace by two veth pairs
# (the topology of bench/datapath.sh). One agent runs through the whole run; the cases differ only in the policies
# it enforces (and, for `haproxy`, in the sidecar in front of nginx). They run interleaved in every round, each
# with keep-alive and with a new connection per request, so a slow moment of this shared machine hits all alike:
#   base     the agent running, no policy
#   l4       the seed article's L4 policies (default-deny + allow-traffic-policy); the client is frontend
#   l7       the same, with the backend's ingress rule replaced by the article's L7 policy
#            (l7-policy-backend-api.yaml): the client's GETs on /api/v1/public/... reach nginx because an HTTP rule
#            allows them, decided in the kernel per request
#   haproxy  no policy; haproxy in http mode in the server pod in front of nginx, allowing GET on ^/api/v1/public/
#            and answering 403 to the rest: the sidecar a user would otherwise pick
# (allow-traffic-policy's allow-ingress-to-backend lets the frontend reach every port of the backend, so with it the
# union of policies would leave the HTTP rules nothing to decide: `l7` deletes it. Its other policies stay, among
# them the frontend's egress to backend:8080, which default-deny's `egress: []` otherwise denies; so `l4` and `l7`
# differ only in the backend's ingress rule.)
# Reported: req/s, p50, p99 (wrk --latency), CPU per request, same-round ratios to `base`, and the issue's goals
# (l7 against l4 and against haproxy).
#
# Three wrk modes (MODES): keep-alive and a new connection per request, each at saturation (closed loop), and
# `paced`: keep-alive with each connection waiting PACE_MS after every answer, so that every case is offered the
# same rate (~18,000 req/s here), below what the slowest (haproxy) serves: at saturation each case's latency is that
# of its own throughput (haproxy admits ~0.6x the requests, and its queue is shorter for it), paced they compare at
# the same load.
# Environment: ROUNDS (5), DURATION (seconds per run, 8), CASES (comma list, all above), THREADS (2),
# CONNECTIONS (50), ALLOWED_FLOW_SAMPLING (the agent's runtime option, 1 by default), BENCH_OUT (directory for
# the table and raw results), NODEAGENT_BIN, NODECTL_BIN, BENCH_NO_BUILD=1 (use existing binaries).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-8}
CASES=${CASES:-base,l4,l7,haproxy}
MODES=${MODES:-keepalive close paced}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-50}
FIXTURES=$REPO_DIR/Tests/EndToEndTests/Fixtures
PUBLIC=/api/v1/public/index.html
ADMIN=/api/v1/admin/x

bench_init
bench_packages wrk nginx-light haproxy python3 curl iproute2 util-linux
bench_build_agent

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

bench_agent_start "$NODE" "$BENCH_WORK/agent"
echo "$AGENT_PID" >>"$PIDS"
bench_api PATCH /v1/config "{\"allowed-flow-sampling\":${ALLOWED_FLOW_SAMPLING:-1}}" >/dev/null
bench_api PUT /v1/endpoint/1 "{\"interface-name\":\"$CLIENT_IF\",\"addressing\":{\"ipv4\":\"$CLIENT_IP\"},
    \"k8s-namespace\":\"web-tier\",\"k8s-pod-name\":\"frontend-0\",\"labels\":[\"k8s:app=frontend\"]}" >/dev/null
bench_api PUT /v1/endpoint/2 "{\"interface-name\":\"$SERVER_IF\",\"addressing\":{\"ipv4\":\"$SERVER_IP\"},
    \"k8s-namespace\":\"api-tier\",\"k8s-pod-name\":\"backend-api-0\",\"labels\":[\"k8s:app=backend-api\"]}" >/dev/null
bench_log "agent ready in ${AGENT_READY_MS} ms; HTTP rules: $(bench_api GET /v1/healthz | python3 -c \
    'import json, sys; print(json.dumps(json.load(sys.stdin).get("l7")))')"

# The server pod's processes run inside the agent's cgroup root, as on a node: the agent enrolls the sockets of
# servers in there. nginx answers on :8080 for everyone and on 127.0.0.1:8081 for the sidecar in front of it; the
# page wrk fetches is the datapath bench's 612 bytes, at a path the L7 policy allows.
export BENCH_CGROUP=$AGENT_CGROUP
mkdir -p "$BENCH_WORK/nginx/www${PUBLIC%/*}"
head -c 612 /dev/zero | tr '\0' 'x' >"$BENCH_WORK/nginx/www$PUBLIC"
bench_nginx "$SERVER" "$BENCH_WORK/nginx" 8080 127.0.0.1:8081
cat "$BENCH_WORK/nginx/pids" >>"$PIDS"

# The sidecar: http mode with keep-alive on both sides, enforcing the L7 policy's rule for the web tier.
if [[ ,$CASES, == *,haproxy,* ]]; then
    cat >"$BENCH_WORK/haproxy.cfg" <<EOF
global
    maxconn 4000
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
frontend sidecar
    bind $SERVER_IP:8090
    http-request deny deny_status 403 unless METH_GET { path_reg ^/api/v1/public/ }
    default_backend app
backend app
    http-reuse always
    server app 127.0.0.1:8081
EOF
    bench_start "$SERVER" "$PIDS" "$BENCH_WORK/haproxy.log" haproxy -db -f "$BENCH_WORK/haproxy.cfg"
fi
unset BENCH_CGROUP

# status CODE of GET URL from the client pod ("000" when nothing answers within a second).
client_get() {
    ip netns exec "$CLIENT" curl -s -o /dev/null -w '%{http_code}' --connect-timeout 1 --max-time 2 "$1" || true
}
answers() { test "$(client_get "$1")" = 200; }
bench_wait_for 10 answers "http://$SERVER_IP:8080$PUBLIC" || bench_die "nginx is not reachable from the client"
if [[ ,$CASES, == *,haproxy,* ]]; then
    bench_wait_for 10 answers "http://$SERVER_IP:8090$PUBLIC" || bench_die "nginx is not reachable through haproxy"
fi

# --- case setup and checks -------------------------------------------------------------------------------------

policies() {
    bench_nodectl policy delete --all >/dev/null
    [ $# -eq 0 ] || bench_nodectl policy import "$@" >/dev/null
}

case_url() {
    case $1 in
        haproxy) echo "http://$SERVER_IP:8090$PUBLIC" ;;
        *) echo "http://$SERVER_IP:8080$PUBLIC" ;;
    esac
}

l7_flow_seen() { bench_nodectl observe -o json --last 50 | grep '"l7"' | grep -q "$ADMIN"; }

# Every case must enforce what it claims before it is measured: the page answers 200; a GET outside the public
# paths gets 403 where HTTP rules are enforced (404 from nginx where not), and for `l7` the agent reports that
# request as a flow with an l7 part; nothing listens on 9090, so without L4 policy the connection is refused
# (curl exit 7), with it the SYN is dropped and curl times out (exit 28).
case_on() {
    case $1 in
        base | haproxy) policies ;;
        l4) policies "$FIXTURES/default-deny-all.yaml" "$FIXTURES/allow-traffic-policy.yaml" ;;
        l7)
            policies "$FIXTURES/default-deny-all.yaml" "$FIXTURES/allow-traffic-policy.yaml" \
                "$FIXTURES/l7-policy-backend-api.yaml"
            bench_nodectl policy delete --namespace api-tier --name allow-ingress-to-backend >/dev/null
            ;;
        *) bench_die "unknown case $1 (known: base, l4, l7, haproxy)" ;;
    esac
    local url admin want_admin=404 rc=0 want_port=7
    url=$(case_url "$1")
    admin=${url%"$PUBLIC"}$ADMIN
    [[ $1 == l7 || $1 == haproxy ]] && want_admin=403
    [[ $1 == l4 || $1 == l7 ]] && want_port=28
    bench_wait_for 10 answers "$url" || bench_die "$1: $url does not answer 200 (got $(client_get "$url"))"
    [ "$(client_get "$admin")" = "$want_admin" ] || bench_die "$1: GET $admin answered $(client_get "$admin")"
    if [ "$1" = l7 ] && ! bench_wait_for 5 l7_flow_seen; then
        bench_nodectl observe -o json --last 5 >&2 || true
        bench_die "l7: no flow with an l7 part for GET $ADMIN"
    fi
    ip netns exec "$CLIENT" curl -s -o /dev/null --connect-timeout 1 "http://$SERVER_IP:9090/" || rc=$?
    [ "$rc" = "$want_port" ] || bench_die "$1: a connection to port 9090 ended with curl exit $rc, not $want_port"
}

# --- the rounds ------------------------------------------------------------------------------------------------

bench_wrk_rounds "$PIDS"
policies

labels=(--label "base=agent, no policy (baseline)" --label "l4=nodeagent, seed L4 policies"
    --label "l7=nodeagent, default-deny + L7 policy (HTTP rules in the kernel)"
    --label "haproxy=haproxy http mode in the server pod (sidecar), no agent policy")
table=$(bench_py datapath-table "$RESULTS" --cases "$CASES" --baseline base --goal-case none \
    --load "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s" "${labels[@]}")
goals=$(bench_py l7-goals "$RESULTS")
{
    echo "HTTP rules: client pod -> node namespace -> nginx pod (612-byte page at $PUBLIC); $(bench_machine)"
    echo "CPU µs/req: utime+stime of wrk, nginx, haproxy and nodeagent over the run / requests (softirq work, the"
    echo "sk_skb parser and verdict included, lands in whichever of them was running); machine CPU: all non-idle"
    echo "time in /proc/stat, other load included."
    echo "$table"
    echo
    echo "$goals"
} | tee "$BENCH_WORK/l7.txt"
if [ -n "${BENCH_OUT:-}" ]; then
    mkdir -p "$BENCH_OUT"
    cp "$BENCH_WORK/l7.txt" "$BENCH_OUT/" && cp "$RESULTS" "$BENCH_OUT/l7.jsonl"
fi
