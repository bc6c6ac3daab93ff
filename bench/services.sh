#!/usr/bin/env bash
# Services benchmark: nodeagent's socket load balancer beside kube-proxy's iptables mode, at SIZES services of 4
# backends each, in one run. Topology (the datapath benchmark's wiring): a node namespace routing between two client
# pods and four backend pods, nginx in every backend pod (a page naming the pod, on 8080 and 8081).
#   agent client  runs inside the client pod's namespace AND a cgroup v2 directory of this script, the agent's
#                 cgroup root: the agent's connect hooks send a connection to a service address straight to a
#                 backend. No netfilter rule exists in its namespace.
#   ipt client    its namespace holds kube-proxy's rules (`iptables-restore` of what kube-proxy's iptables proxier
#                 writes, see bench/services.py): in our model the client's namespace is the "host" whose nat
#                 OUTPUT chain sees the connection and DNATs it. It is outside the agent's cgroup.
# Both reach the same four backends through the same node. Cases, interleaved in every round (order rotated):
#   direct        agent client -> backend 1 directly (the agent's hooks run, find no service): the baseline
#   agent-first   agent client -> service 1          agent-last  agent client -> service N
#   agent-one     agent client -> a service whose only backend is backend 1: against `direct`, the same pod
#                 reached with and without translation
#   ipt-first     ipt client -> service 1 (the first KUBE-SERVICES rule)
#   ipt-last      ipt client -> service N (the last rule before KUBE-NODEPORTS: the linear chain's worst case)
#   ipt-direct    ipt client -> backend 1 directly (a connection to no service walks all of KUBE-SERVICES too)
# Load: wrk with `Connection: close`, so every request is a new connection; CPU per connection = utime+stime of wrk,
# nginx and the agent over the run / connections. Sizes run one after another, smallest first (the agent keeps its
# services and gets the new ones; iptables gets a full restore); ratios to `direct` are taken within a round.
# Also measured at each size: one service changed (nodeagent: one PUT /v1/service/{id}; iptables: the
# `iptables-restore --noflush` of that service's chains alone, and kube-proxy's partial sync around it), one added
# and deleted (nodeagent), a full restore (kube-proxy's full sync), service creation through the API, the agent's
# RSS and its maps' kernel memory, and for iptables the rule count and the kernel memory of the rules.
#
# Environment: SIZES (100,1000,10000), ROUNDS (3), DURATION (seconds per wrk run, 5), CASES (comma list, all
# above), THREADS (2), CONNECTIONS (50), CHANGES (service changes timed per size, 20), FULL_SYNCS (full restores
# timed per size, 3), LB_SELECTION (the agent's services.backend-selection: random or maglev), IPTABLES_RESTORE
# (iptables-legacy-restore: x_tables, kube-proxy's classic backend; iptables-restore is the nf_tables one, whose
# --noflush restore grows quadratically here: 3.5 s for 1,000 services, 41-73 s for 3,000, so 10,000 do not fit
# a run), BENCH_OUT, NODEAGENT_BIN, NODECTL_BIN, BENCH_NO_BUILD=1, BENCH_KEEP=1.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SIZES=${SIZES:-100,1000,10000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CASES=${CASES:-direct,agent-one,agent-first,agent-last,ipt-first,ipt-last,ipt-direct}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-50}
CHANGES=${CHANGES:-20}
FULL_SYNCS=${FULL_SYNCS:-3}
IPTABLES_RESTORE=${IPTABLES_RESTORE:-iptables-legacy-restore}
LB_SELECTION=${LB_SELECTION:-random}
IPTABLES_SAVE=${IPTABLES_RESTORE%-restore}-save

bench_init
bench_packages wrk nginx-light iptables nftables python3 curl iproute2 util-linux
AGENT_CASES=0
[[ ,$CASES, == *,agent-* ]] && AGENT_CASES=1
[ "$AGENT_CASES" = 1 ] && bench_build_agent

NODE=$BENCH_PREFIX-node
CLIENT_A=$BENCH_PREFIX-ca
CLIENT_I=$BENCH_PREFIX-ci
GATEWAY=10.245.0.1
CLIENT_A_IP=10.245.1.10
CLIENT_I_IP=10.245.1.11
BACKEND_IPS=(10.245.2.1 10.245.2.2 10.245.2.3 10.245.2.4)
ONE_ID=65000
ONE_IP=10.97.0.1
W=$BENCH_WORK
RESULTS=$W/services.jsonl
FACTS=$W/facts.jsonl
: >"$RESULTS"
: >"$FACTS"
svc() { python3 "$BENCH_DIR/services.py" "$@"; }
svc_backends=(--backend-ips "$(IFS=,; echo "${BACKEND_IPS[*]}")" --backend-port 8080 --alt-port 8081)

# The cgroup v2 directory the agent attaches its hooks to and the agent client runs in. Removed on exit once its
# processes are gone (registered first, so it runs after the agent and every client have stopped).
CG_MOUNT=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)
[ -n "$CG_MOUNT" ] || bench_die "no cgroup v2 mount on this machine"
CGROUP=$CG_MOUNT/nodeagent-bench-$BENCH_TAG
mkdir "$CGROUP"
# (Its own loop variable: the cleanup runs with eval inside bench_cleanup's loop over i.)
bench_on_exit "for _try in \$(seq 50); do rmdir '$CGROUP' 2>/dev/null && break; sleep 0.1; done"

bench_log "topology: $CLIENT_A ($CLIENT_A_IP, cgroup $CGROUP), $CLIENT_I ($CLIENT_I_IP) -> $NODE -> 4 backends"
bench_node "$NODE"
bench_pod "$NODE" "$CLIENT_A" "${BENCH_PREFIX}a" "$CLIENT_A_IP" "$GATEWAY"
bench_pod "$NODE" "$CLIENT_I" "${BENCH_PREFIX}i" "$CLIENT_I_IP" "$GATEWAY"
: >"$W/pids"
for ((b = 0; b < ${#BACKEND_IPS[@]}; b++)); do
    pod=$BENCH_PREFIX-b$((b + 1))
    bench_pod "$NODE" "$pod" "${BENCH_PREFIX}b$((b + 1))" "${BACKEND_IPS[b]}" "$GATEWAY"
    # The page names its pod (padded to nginx's 612-byte welcome page), so a client can tell backends apart.
    mkdir -p "$W/nginx-b$((b + 1))/www"
    printf 'b%d\n%610s' $((b + 1)) '' >"$W/nginx-b$((b + 1))/www/index.html"
    bench_nginx "$pod" "$W/nginx-b$((b + 1))" 8080 8081
    cat "$W/nginx-b$((b + 1))/pids" >>"$W/pids"
done

# Command prefixes that run a command in a client: the agent client's joins the cgroup before exec, so the command
# and all it starts are in it. nsenter and sh exec, so the command keeps the pid it was started with.
AGENT_RUN=(nsenter --net="/var/run/netns/$CLIENT_A" -- sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CGROUP")
IPT_RUN=(nsenter --net="/var/run/netns/$CLIENT_I" --)
in_agent_client() { "${AGENT_RUN[@]}" "$@"; }
in_ipt_client() { "${IPT_RUN[@]}" "$@"; }

# The first line of the page at URL from a client ("" when nothing answers within a second).
page() { # CLIENT URL
    local run=in_agent_client
    [ "$1" = ipt ] && run=in_ipt_client
    "$run" curl -sf --connect-timeout 1 --max-time 2 "$2" 2>/dev/null | head -1 || true
}
backend_answers() { test "$(page agent "http://$1:8080/")" != ""; }
for ip in "${BACKEND_IPS[@]}"; do
    bench_wait_for 10 backend_answers "$ip" || bench_die "nginx at $ip:8080 does not answer the agent client"
done

service_ip() { python3 -c 'import sys; i = int(sys.argv[1]); print(f"10.96.{i >> 8 & 255}.{i & 255}")' "$1"; }

# A service must answer from its client, and reach several backends: 40 requests, at least 3 of the 4 pods.
check_service() { # CLIENT SERVICE-INDEX
    local url seen
    url="http://$(service_ip "$2"):80/"
    seen=$(for _ in $(seq 40); do page "$1" "$url"; done | sort -u | grep -c . || true)
    [ "$seen" -ge 3 ] || bench_die "$1 client: service $2 ($url) reached $seen distinct backends in 40 requests"
}

# --- nodeagent ----------------------------------------------------------------------------------------------------

# The services section names the cgroup and the selection; --cgroup-root says the cgroup again because flags win
# over the file and bench_agent_start passes a cgroup of its own (this one is the agent client's).
if [ "$AGENT_CASES" = 1 ]; then
    printf '{"services": {"enabled": true, "cgroup-root": "%s", "backend-selection": "%s"}}\n' "$CGROUP" \
        "$LB_SELECTION" >"$W/agent.json"
    bench_agent_start "$NODE" "$W/agent" --config "$W/agent.json" --cgroup-root "$CGROUP"
    echo "$AGENT_PID" >"$W/agent.pid"
    bench_log "nodeagent ready in $AGENT_READY_MS ms (pid $AGENT_PID)"
    bench_api PUT "/v1/service/$ONE_ID" "{\"frontend-address\": {\"ip\": \"$ONE_IP\", \"port\": 80},
        \"backend-addresses\": [{\"ip\": \"${BACKEND_IPS[0]}\", \"port\": 8080}]}" >/dev/null
fi
[ -z "$(in_agent_client nft list ruleset)$(in_agent_client iptables-legacy-save)" ] \
    || bench_die "netfilter rules exist in the agent client's namespace"

# The summary goes through stdin: with thousands of samples it outgrows what one argument may hold (128 KiB).
timing_fact() { # WHAT SERVICES JSON-SUMMARY
    printf '%s\n' "$3" | python3 -c 'import json, sys; d = json.load(sys.stdin); d.pop("label", None)
d.update(kind="timing", what=sys.argv[1], services=int(sys.argv[2])); print(json.dumps(d))' "$1" "$2" >>"$FACTS"
}
memory_fact() { # WHAT SERVICES VALUE
    python3 -c 'import json, sys; print(json.dumps(dict(kind="memory", what=sys.argv[1], services=int(sys.argv[2]),
value=sys.argv[3])))' "$@" >>"$FACTS"
}

agent_size() { # FROM TO: creates services FROM..TO, times them, then one service's changes; RSS
    local from=$1 to=$2 summary rss
    svc agent-creates --first "$from" --last "$to" "${svc_backends[@]}" >"$W/creates.jsonl"
    summary=$(bench_py api-timed --socket "$AGENT_SOCK" --requests "$W/creates.jsonl" --label create \
        --pid "$AGENT_PID") || bench_die "creating services $from..$to failed"
    timing_fact "nodeagent: create (PUT /v1/service/{id}, services $from..$to)" "$to" "$summary"
    bench_log "agent: created services $from..$to: $(echo "$summary" | bench_py brief)"
    svc agent-changes --service $((to / 2 + 1)) --count "$CHANGES" "${svc_backends[@]}" >"$W/changes.jsonl"
    summary=$(bench_py api-timed --socket "$AGENT_SOCK" --requests "$W/changes.jsonl" --label change) \
        || bench_die "changing service $((to / 2 + 1)) failed"
    timing_fact "nodeagent: change one service, a backend replaced (PUT /v1/service/{id})" "$to" "$summary"
    bench_log "agent: one service changed: $(echo "$summary" | bench_py brief)"
    # The same with no backend leaving: a backend that leaves has its connections ended (sock_diag in every network
    # namespace of the machine), which a weight change does not need.
    svc agent-changes --service $((to / 2 + 1)) --count "$CHANGES" --kind weight "${svc_backends[@]}" \
        >"$W/weights.jsonl"
    summary=$(bench_py api-timed --socket "$AGENT_SOCK" --requests "$W/weights.jsonl" --label weight) \
        || bench_die "changing service $((to / 2 + 1))'s weights failed"
    timing_fact "nodeagent: change one service, a backend's weight (PUT /v1/service/{id})" "$to" "$summary"
    local held
    held=$(for p in /proc/[0-9]*; do readlink "$p/ns/net"; done 2>/dev/null | sort -u | wc -l)
    memory_fact "machine: network namespaces (named; distinct among processes)" "$to" "$(ip netns list | wc -l); $held"
    # One service more, CHANGES times over (each added, all then deleted): the size stays `to` for the traffic.
    svc agent-creates --first $((to + 1)) --last $((to + CHANGES)) "${svc_backends[@]}" >"$W/adds.jsonl"
    summary=$(bench_py api-timed --socket "$AGENT_SOCK" --requests "$W/adds.jsonl" --label add) \
        || bench_die "adding services after $to failed"
    timing_fact "nodeagent: add one service (PUT /v1/service/{id})" "$to" "$summary"
    svc agent-deletes --first $((to + 1)) --last $((to + CHANGES)) >"$W/deletes.jsonl"
    summary=$(bench_py api-timed --socket "$AGENT_SOCK" --requests "$W/deletes.jsonl" --label delete) \
        || bench_die "deleting services after $to failed"
    timing_fact "nodeagent: delete one service (DELETE /v1/service/{id})" "$to" "$summary"
    local answer
    answer=$(bench_api GET "/v1/service/$to")
    echo "$answer" | grep -q '"realized": *true' || bench_die "service $to is not realized: $answer"
    rss=$(bench_py memory "$AGENT_PID" | awk '{printf "VmRSS %.1f MiB, VmHWM %.1f MiB", $1, $2}')
    memory_fact "nodeagent process" "$to" "$rss"
    memory_fact "nodeagent: the load balancer's BPF maps (kernel, preallocated)" "$to" "$(lb_map_memory)"
}

# The kernel memory of the pinned na_lb_* maps as bpftool reports it (bytes_memlock), and how many there are.
lb_map_memory() {
    local map bytes total=0 count=0
    while read -r map; do
        bytes=$(bpftool -j map show pinned "$map" \
            | python3 -c 'import json, sys; print(json.load(sys.stdin)["bytes_memlock"])')
        total=$((total + bytes))
        count=$((count + 1))
    done < <(find "$AGENT_BPF" -name 'na_lb_*' 2>/dev/null)
    echo "$count maps, $((total / 1048576)) MiB"
}

# --- kube-proxy's iptables mode ------------------------------------------------------------------------------------

in_ipt_client "$IPTABLES_RESTORE" --noflush < <(svc ipt-setup)
MEM_EMPTY=$(svc meminfo)

ipt_size() { # SERVICES: a full sync to SERVICES services (timed FULL_SYNCS times), then one service's changes
    local n=$1 i summary inputs=() partial=() service=$(($1 / 2 + 1)) rules
    svc ipt-full "$n" "${svc_backends[@]}" >"$W/ipt-full.txt"
    for ((i = 0; i < FULL_SYNCS; i++)); do inputs+=(--input "$W/ipt-full.txt"); done
    summary=$(in_ipt_client python3 "$BENCH_DIR/services.py" timed-stdin --label full "${inputs[@]}" -- \
        "$IPTABLES_RESTORE" --noflush) || bench_die "the full restore of $n services failed"
    timing_fact "iptables: full sync (iptables-restore --noflush of every chain)" "$n" "$summary"
    bench_log "iptables: full sync of $n services: $(echo "$summary" | bench_py brief)"
    # Changes alternate the service between its two endpoint sets, so each one is a real change.
    inputs=()
    for ((i = 0; i < CHANGES; i++)); do
        local old=a new=b
        [ $((i % 2)) = 1 ] && old=b new=a
        svc ipt-change "$n" --service "$service" --old $old --new $new "${svc_backends[@]}" >"$W/ipt-change-$i.txt"
        svc ipt-change "$n" --service "$service" --old $old --new $new --partial "${svc_backends[@]}" \
            >"$W/ipt-partial-$i.txt"
        inputs+=(--input "$W/ipt-change-$i.txt")
        partial+=(--input "$W/ipt-partial-$i.txt")
    done
    summary=$(in_ipt_client python3 "$BENCH_DIR/services.py" timed-stdin --label change "${inputs[@]}" -- \
        "$IPTABLES_RESTORE" --noflush) || bench_die "changing one service's chains failed"
    timing_fact "iptables: change one service (--noflush restore of its KUBE-SVC/KUBE-SEP chains)" "$n" "$summary"
    bench_log "iptables: one service's chains: $(echo "$summary" | bench_py brief)"
    summary=$(in_ipt_client python3 "$BENCH_DIR/services.py" timed-stdin --label partial "${partial[@]}" -- \
        "$IPTABLES_RESTORE" --noflush) || bench_die "the partial sync failed"
    timing_fact "iptables: change one service (kube-proxy partial sync: + KUBE-SERVICES in full)" "$n" "$summary"
    bench_log "iptables: partial sync: $(echo "$summary" | bench_py brief)"
    # CHANGES is even or odd: either way the service must be back in a consistent set; a full restore makes sure.
    in_ipt_client "$IPTABLES_RESTORE" --noflush <"$W/ipt-full.txt"
    # Freed rules go back to the slab after an RCU grace period.
    sleep 1
    rules=$(in_ipt_client "$IPTABLES_SAVE" | grep -c '^-A' || true)
    memory_fact "iptables: rules in the client namespace (nat + filter, iptables-save)" "$n" "$rules"
    if [[ $IPTABLES_RESTORE == *legacy* ]]; then
        memory_fact "kernel: x_tables rule blobs (nat + filter, IPT_SO_GET_INFO) and their per-CPU counters" "$n" \
            "$(in_ipt_client python3 "$BENCH_DIR/services.py" xt-size \
                | awk '{printf "%d entries, %.1f MiB + %.1f MiB counters", $1, $2 / 1048576, $3 / 1048576}')"
    else
        memory_fact "kernel: /proc/meminfo growth since before the first restore (whole machine)" "$n" \
            "$(svc meminfo-delta "$MEM_EMPTY" "$(svc meminfo)")"
    fi
}

# --- the rounds ---------------------------------------------------------------------------------------------------

case_url() { # CASE SERVICES
    case $1 in
        direct | ipt-direct) echo "http://${BACKEND_IPS[0]}:8080/" ;;
        agent-one) echo "http://$ONE_IP:80/" ;;
        *-first) echo "http://$(service_ip 1):80/" ;;
        *-last) echo "http://$(service_ip "$2"):80/" ;;
    esac
}

run_case() { # CASE SERVICES ROUND
    local url pids=$W/pids run=("${AGENT_RUN[@]}")
    url=$(case_url "$1" "$2")
    [[ $1 == ipt-* ]] && run=("${IPT_RUN[@]}")
    if [[ $1 == agent-* ]]; then
        cat "$W/pids" "$W/agent.pid" >"$W/pids.agent"
        pids=$W/pids.agent
    fi
    bench_py run --case "$1" --mode "$2" --round "$3" --pids-file "$pids" \
        --output "$W/wrk-$1-$2-$3.txt" -- \
        "${run[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Connection: close" "$url" \
        >>"$RESULTS"
    bench_log "$2 services, round $3, $1: $(tail -1 "$RESULTS" | bench_py brief)"
}

IFS=, read -r -a case_list <<<"$CASES"
IFS=, read -r -a size_list <<<"$SIZES"
bench_log "machine: $(bench_machine)"
bench_log "sizes $SIZES x $ROUNDS rounds x ${#case_list[@]} cases x ${DURATION}s"
have=0
for size in "${size_list[@]}"; do
    [ "$size" -gt "$have" ] || bench_die "SIZES must grow: $SIZES"
    [ "$AGENT_CASES" = 1 ] && agent_size $((have + 1)) "$size"
    [[ ,$CASES, == *,ipt-* ]] && ipt_size "$size"
    have=$size
    for name in "${case_list[@]}"; do
        case $name in
            agent-first | agent-last) check_service agent "$([ "$name" = agent-first ] && echo 1 || echo "$size")" ;;
            ipt-first | ipt-last) check_service ipt "$([ "$name" = ipt-first ] && echo 1 || echo "$size")" ;;
            direct | ipt-direct) [ "$(page "${name%-direct}" "$(case_url "$name")")" = b1 ] \
                || bench_die "$name: backend 1 does not answer" ;;
            agent-one) [ "$(page agent "$(case_url "$name")")" = b1 ] || bench_die "$name: $ONE_IP does not answer" ;;
            *) bench_die "unknown case $name" ;;
        esac
    done
    for ((round = 1; round <= ROUNDS; round++)); do
        for ((i = 0; i < ${#case_list[@]}; i++)); do
            run_case "${case_list[$(((i + round - 1) % ${#case_list[@]}))]}" "$size" "$round"
        done
    done
done

{
    echo "services: $(bench_machine);"
    echo "$IPTABLES_RESTORE $("$IPTABLES_RESTORE" --version 2>&1 | head -1 | awk '{print $2, $3}')"
    echo "CPU µs/conn: utime+stime of wrk, the four nginx and the agent over the run / connections (connect hooks,"
    echo "netfilter and conntrack run in those processes' system time); machine CPU: all non-idle time in /proc/stat,"
    echo "other load included."
    svc table "$RESULTS" --facts "$FACTS" --cases "$CASES" --baseline direct \
        --load "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, Connection: close" \
        --label "direct=agent client → backend directly (baseline)" \
        --label "agent-first=nodeagent, service 1" --label "agent-last=nodeagent, last service" \
        --label "agent-one=nodeagent, a service of backend 1 alone" \
        --label "ipt-first=kube-proxy iptables, service 1 (first rule)" \
        --label "ipt-last=kube-proxy iptables, last service (last rule)" \
        --label "ipt-direct=kube-proxy iptables client → backend directly (no service)"
} | tee "$W/services.txt"
if [ -n "${BENCH_OUT:-}" ]; then
    mkdir -p "$BENCH_OUT"
    cp "$W/services.txt" "$RESULTS" "$FACTS" "$BENCH_OUT/"
    mv "$BENCH_OUT/facts.jsonl" "$BENCH_OUT/services-facts.jsonl"
fi
