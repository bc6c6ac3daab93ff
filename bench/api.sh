#!/usr/bin/env bash
# API benchmark: the agent's REST API over its Unix socket beside nginx serving static files of the same bytes and a
# bare libmicrohttpd server (bench/src/mhd-static.c, the agent's daemon setup) serving them from memory, all on Unix
# sockets and measured the same way: h2load --h1 (HTTP/1.1, keep-alive) with 16 connections, straight to the socket
# (-B unix:...). Requests: GET /v1/healthz; GET /v1/endpoint with ENDPOINTS endpoints registered (a large JSON
# array); GET /v1/endpoint?labels=FILTER (one endpoint of them). Rounds interleave the servers.
#
# Environment: ENDPOINTS (1000), REQUESTS (200000 for /v1/healthz and the filtered list: 2-3 s a run here; runs of
# 20000 lasted a quarter of a second, where the clients' start and one scheduling delay moved single runs by 2x),
# LIST_REQUESTS (2000 for /v1/endpoint, whose answers are large), CLIENTS (16), ROUNDS (3), BENCH_OUT,
# NODEAGENT_BIN, NODECTL_BIN, BENCH_NO_BUILD=1.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

ENDPOINTS=${ENDPOINTS:-1000}
REQUESTS=${REQUESTS:-200000}
LIST_REQUESTS=${LIST_REQUESTS:-2000}
CLIENTS=${CLIENTS:-16}
ROUNDS=${ROUNDS:-3}
FILTER=${FILTER:-k8s:app=svc-7}

bench_init
bench_packages nghttp2-client nginx-light python3 curl iproute2 util-linux gcc libc6-dev libmicrohttpd-dev
bench_build_agent
NODE=$BENCH_PREFIX-node
W=$BENCH_WORK
RESULTS=$W/api.jsonl
: >"$RESULTS"

bench_node "$NODE"
bench_log "creating $ENDPOINTS veth pairs in $NODE"
for ((i = 0; i < ENDPOINTS; i++)); do
    echo "link add ${BENCH_PREFIX}d$i type veth peer name ${BENCH_PREFIX}p$i"
    echo "link set ${BENCH_PREFIX}d$i up"
done | ip -n "$NODE" -batch -
python3 - "$W" "$BENCH_PREFIX" "$ENDPOINTS" <<'EOF'
import json, sys
w, prefix, endpoints = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(f"{w}/endpoints.jsonl", "w") as f:
    for i in range(endpoints):
        f.write(json.dumps({"method": "PUT", "path": f"/v1/endpoint/{i + 1}", "body": {
            "interface-name": f"{prefix}d{i}", "addressing": {"ipv4": f"10.250.{i // 250}.{i % 250 + 1}"},
            "k8s-namespace": f"ns-{i % 10}", "k8s-pod-name": f"svc-{i}-0",
            "labels": [f"k8s:app=svc-{i}", f"k8s:tier={'web' if i % 2 else 'backend'}"]}}) + "\n")
EOF

bench_log "machine: $(bench_machine)"
bench_agent_start "$NODE" "$W/agent"
bench_py api-timed --socket "$AGENT_SOCK" --requests "$W/endpoints.jsonl" --label setup >/dev/null \
    || bench_die "registering the endpoints failed"

# nginx serves the agent's own answers, byte for byte, from files on a Unix socket of its own.
mkdir -p "$W/nginx/www/v1"
bench_api GET /v1/healthz >"$W/nginx/www/v1/healthz"
bench_api GET /v1/endpoint >"$W/nginx/www/v1/endpoint"
python3 -c 'import json,sys; n=len(json.load(open(sys.argv[1]))); sys.exit(0 if n == int(sys.argv[2]) else 1)' \
    "$W/nginx/www/v1/endpoint" "$ENDPOINTS" || bench_die "GET /v1/endpoint does not list $ENDPOINTS endpoints"
bench_api GET "/v1/endpoint?labels=$FILTER" >"$W/nginx/www/v1/endpoint-filtered"
python3 -c 'import json,sys; sys.exit(0 if len(json.load(open(sys.argv[1]))) == 1 else 1)' \
    "$W/nginx/www/v1/endpoint-filtered" || bench_die "GET /v1/endpoint?labels=$FILTER does not list one endpoint"
HEALTH_BYTES=$(stat -c %s "$W/nginx/www/v1/healthz")
LIST_BYTES=$(stat -c %s "$W/nginx/www/v1/endpoint")
FILTERED_BYTES=$(stat -c %s "$W/nginx/www/v1/endpoint-filtered")
: >"$W/nginx/pids"
NGINX_DEFAULT_TYPE=application/json bench_nginx "$NODE" "$W/nginx" "unix:$W/nginx/nginx.sock"
NGINX_SOCK=$W/nginx/nginx.sock
nginx_up() { curl -sf --unix-socket "$NGINX_SOCK" http://localhost/v1/healthz >/dev/null; }
bench_wait_for 10 nginx_up || bench_die "nginx does not answer on $NGINX_SOCK"

# The bare libmicrohttpd server: the agent's daemon flags and pool size, the same answers from memory.
cc -O2 -o "$W/mhd-static" "$BENCH_DIR/src/mhd-static.c" -lmicrohttpd || bench_die "building mhd-static failed"
MHD_SOCK=$W/mhd.sock
: >"$W/mhd-pids"
bench_start "$NODE" "$W/mhd-pids" "$W/mhd.log" "$W/mhd-static" "$MHD_SOCK" 4 \
    "/v1/healthz=$W/nginx/www/v1/healthz" "/v1/endpoint=$W/nginx/www/v1/endpoint" \
    "/v1/endpoint?labels=$FILTER=$W/nginx/www/v1/endpoint-filtered"
mhd_up() { curl -sf --unix-socket "$MHD_SOCK" http://localhost/v1/healthz >/dev/null; }
bench_wait_for 10 mhd_up || bench_die "mhd-static does not answer on $MHD_SOCK"
cp "$W/nginx/pids" "$W/pids"
cat "$W/mhd-pids" >>"$W/pids"
echo "$AGENT_PID" >>"$W/pids"

run() { # CASE SOCKET PATH COUNT ROUND
    rm -f "$W/h2load.log"
    bench_py run --tool h2load --case "$1" --round "$5" --pids-file "$W/pids" --h2load-log "$W/h2load.log" \
        --output "$W/h2load-$1-$5.txt" -- \
        h2load --h1 -c"$CLIENTS" -n"$4" --log-file="$W/h2load.log" -B "unix:$2" "http://localhost$3" >>"$RESULTS"
    bench_log "round $5 $1: $(tail -1 "$RESULTS" | bench_py brief)"
}

cases=(agent-health nginx-health mhd-health agent-list nginx-list agent-filter nginx-filter mhd-filter)
for ((round = 1; round <= ROUNDS; round++)); do
    for ((i = 0; i < ${#cases[@]}; i++)); do
        name=${cases[$(((i + round - 1) % ${#cases[@]}))]}
        case $name in
            agent-health) run "$name" "$AGENT_SOCK" /v1/healthz "$REQUESTS" "$round" ;;
            nginx-health) run "$name" "$NGINX_SOCK" /v1/healthz "$REQUESTS" "$round" ;;
            agent-list) run "$name" "$AGENT_SOCK" /v1/endpoint "$LIST_REQUESTS" "$round" ;;
            nginx-list) run "$name" "$NGINX_SOCK" /v1/endpoint "$LIST_REQUESTS" "$round" ;;
            mhd-health) run "$name" "$MHD_SOCK" /v1/healthz "$REQUESTS" "$round" ;;
            agent-filter) run "$name" "$AGENT_SOCK" "/v1/endpoint?labels=$FILTER" "$REQUESTS" "$round" ;;
            nginx-filter) run "$name" "$NGINX_SOCK" /v1/endpoint-filtered "$REQUESTS" "$round" ;;
            mhd-filter) run "$name" "$MHD_SOCK" "/v1/endpoint?labels=$FILTER" "$REQUESTS" "$round" ;;
        esac
    done
done

{
    echo "api: h2load --h1 -c$CLIENTS over Unix sockets; nodeagent (libmicrohttpd) beside nginx serving the same bytes"
    echo "from files and a bare libmicrohttpd server serving them from memory; $(bench_machine)"
    echo "CPU µs/req: utime+stime of h2load and the servers over the run / requests."
    bench_py api-table "$RESULTS" \
        --groups "nginx-health,mhd-health,agent-health;nginx-list,agent-list;nginx-filter,mhd-filter,agent-filter" \
        --load "h2load --h1 -c$CLIENTS" \
        --label "nginx-health:title=GET /v1/healthz ($HEALTH_BYTES bytes), -n $REQUESTS" \
        --label "nginx-list:title=GET /v1/endpoint with $ENDPOINTS endpoints ($LIST_BYTES bytes), -n $LIST_REQUESTS" \
        --label "nginx-health=nginx, static file" --label "agent-health=nodeagent" \
        --label "nginx-list=nginx, static file" --label "agent-list=nodeagent" \
        --label "nginx-filter:title=GET /v1/endpoint?labels=$FILTER, 1 of $ENDPOINTS ($FILTERED_BYTES bytes), -n $REQUESTS" \
        --label "nginx-filter=nginx, static file" --label "agent-filter=nodeagent" \
        --label "mhd-health=bare libmicrohttpd" --label "mhd-filter=bare libmicrohttpd"
} | tee "$W/api.txt"
if [ -n "${BENCH_OUT:-}" ]; then
    mkdir -p "$BENCH_OUT"
    cp "$W/api.txt" "$RESULTS" "$BENCH_OUT/"
fi
