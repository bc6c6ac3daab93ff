# bench/lib.sh: helpers shared by the benchmark scripts (sourced, never run alone).
#
# Every script creates its own network namespaces named nb<tag>-<role>, where <tag> is the script's pid in hex, so
# two runs never share a name, and registers the undo of everything it creates with bench_on_exit; the EXIT trap
# undoes it in reverse order whatever happens. Nothing here touches the root namespace's interfaces, routes or
# firewall: interfaces, addresses, routes and iptables rules are only ever created inside namespaces made here.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
BENCH_TAG=$(printf '%x' $$)
BENCH_PREFIX="nb${BENCH_TAG}"
BENCH_CLEANUPS=()
[ -d /opt/swift/usr/bin ] && export PATH="/opt/swift/usr/bin:$PATH"

bench_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
bench_die() { bench_log "error: $*"; exit 1; }

bench_require_root() {
    [ "$(id -u)" = 0 ] || { echo "$(basename "$0"): needs root (network namespaces, BPF)" >&2; exit 1; }
}

# Registers a command (a string, run with eval) to undo something; the newest runs first.
bench_on_exit() { BENCH_CLEANUPS+=("$1"); }

bench_cleanup() {
    local status=$? i
    trap - EXIT INT TERM
    set +e
    for ((i = ${#BENCH_CLEANUPS[@]} - 1; i >= 0; i--)); do
        eval "${BENCH_CLEANUPS[i]}" >/dev/null 2>&1
    done
    BENCH_CLEANUPS=()
    exit "$status"
}

# Installs the EXIT/INT/TERM trap and a private work directory ($BENCH_WORK). A namespace left by an earlier run
# that had this same pid (and so this tag) is removed first: no live process can share the pid.
bench_init() {
    bench_require_root
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local ns
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${BENCH_PREFIX}-" || true); do
        ip netns delete "$ns" 2>/dev/null || true
    done
    BENCH_WORK=$(mktemp -d "/tmp/${BENCH_PREFIX}.XXXXXX")
    chmod 755 "$BENCH_WORK"
    # BENCH_KEEP=1 keeps it (logs, raw load-generator output) for a look afterwards.
    [ "${BENCH_KEEP:-0}" = 1 ] || bench_on_exit "rm -rf '$BENCH_WORK'"
}

# Installs the Debian packages that are missing. Services they ship are not started (policy-rc.d), so nothing
# starts listening in the root namespace.
bench_packages() {
    local missing=() p guard="" rc=0
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    bench_log "installing ${missing[*]}"
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        guard=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/dev/null || rc=$?
    [ -n "$guard" ] && rm -f /usr/sbin/policy-rc.d
    return "$rc"
}

# Builds nodeagent and nodectl (release) unless NODEAGENT_BIN and NODECTL_BIN point at binaries, or
# BENCH_NO_BUILD=1 and they exist; sets $AGENT and $NODECTL.
bench_build_agent() {
    AGENT=${NODEAGENT_BIN:-$REPO_DIR/.build/release/nodeagent}
    NODECTL=${NODECTL_BIN:-$REPO_DIR/.build/release/nodectl}
    local have=0
    [ "${BENCH_NO_BUILD:-0}" = 1 ] && [ -x "$AGENT" ] && [ -x "$NODECTL" ] && have=1
    if [ -z "${NODEAGENT_BIN:-}" ] && [ "$have" = 0 ]; then
        bench_log "building nodeagent and nodectl (swift build -c release --static-swift-stdlib)"
        "$REPO_DIR/scripts/setup.sh" >/dev/null
        (cd "$REPO_DIR" && swift build -c release --static-swift-stdlib --product nodeagent >/dev/null \
            && swift build -c release --static-swift-stdlib --product nodectl >/dev/null) \
            || bench_die "swift build failed"
    fi
    [ -x "$AGENT" ] || bench_die "no nodeagent binary at $AGENT"
    [ -x "$NODECTL" ] || bench_die "no nodectl binary at $NODECTL"
    mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
}

# The test build for benchmarks that are XCTests: release, with -enable-testing (other suites use @testable
# import), in a scratch path of its own ($BENCH_SCRATCH) so it does not invalidate the agent's release build.
BENCH_SCRATCH=$REPO_DIR/.build-bench
bench_build_tests() {
    [ "${BENCH_NO_BUILD:-0}" = 1 ] && [ -d "$BENCH_SCRATCH/release" ] && return 0
    bench_log "building the tests (release, $BENCH_SCRATCH)"
    "$REPO_DIR/scripts/setup.sh" >/dev/null
    (cd "$REPO_DIR" && swift build -c release -Xswiftc -enable-testing --build-tests --scratch-path "$BENCH_SCRATCH") \
        >"$BENCH_WORK/build.log" 2>&1 || { tail -30 "$BENCH_WORK/build.log" >&2; bench_die "the test build failed"; }
}

# bench_test FILTER LOG: runs the XCTests matching FILTER from that build with NODEAGENT_BENCH=1.
bench_test() {
    (cd "$REPO_DIR" && NODEAGENT_BENCH=1 swift test -c release -Xswiftc -enable-testing \
        --scratch-path "$BENCH_SCRATCH" --skip-build --filter "$1") >"$2" 2>&1
}

# bench_netns NAME: creates a namespace (removed on exit) with lo up.
bench_netns() {
    ip netns add "$1"
    bench_on_exit "ip netns delete '$1'"
    ip -n "$1" link set lo up
}

# bench_node NAME: a node namespace that routes between pods, as a Cilium node does.
bench_node() {
    bench_netns "$1"
    ip netns exec "$1" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
        net.ipv4.conf.default.rp_filter=0 net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
}

# bench_pod NODE POD HOSTIF IPV4 GATEWAY: a pod namespace whose eth0 pairs with HOSTIF in the node namespace.
# Inside: the address as /32, an on-link route to the gateway and a default route via it. In the node: the
# gateway address on the host veth and a host route to the pod through it (the wiring of the end-to-end tests).
bench_pod() {
    local node=$1 pod=$2 hostif=$3 ip=$4 gw=$5
    bench_netns "$pod"
    ip -n "$node" link add "$hostif" type veth peer name eth0 netns "$pod"
    # Proxies that open a connection per request run out of ports with the defaults (28k ports, 60 s TIME_WAIT):
    # the tuning any busy proxy host gets, in every pod alike.
    ip netns exec "$pod" sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65535"
    ip -n "$pod" -batch - <<EOF
link set eth0 up
address add $ip/32 dev eth0
route add $gw dev eth0 scope link
route add default via $gw dev eth0
EOF
    ip -n "$node" -batch - <<EOF
link set $hostif up
address add $gw/32 dev $hostif
route add $ip/32 dev $hostif
EOF
}

# bench_start NETNS PIDFILE LOG CMD...: runs CMD in the background inside NETNS, appends its pid to PIDFILE and
# to $BENCH_LAST_PID, and stops it on exit. `ip netns exec` execs CMD, so the pid is CMD's own. (Not to be
# called in a command substitution: the cleanup would be registered in a subshell and lost.)
# With BENCH_CGROUP set (a cgroup v2 directory, e.g. $AGENT_CGROUP) CMD starts inside that cgroup, as a pod's
# processes are inside the agent's cgroup root on a node: the agent's cgroup programs (socket load balancer, the
# sockops that enrolls server sockets of ports with HTTP rules) see only the sockets of processes in there.
bench_start() {
    local ns=$1 pidfile=$2 log=$3
    shift 3
    if [ -n "${BENCH_CGROUP:-}" ]; then
        sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$BENCH_CGROUP" nsenter --net="/var/run/netns/$ns" "$@" \
            >>"$log" 2>&1 </dev/null &
    else
        ip netns exec "$ns" "$@" >>"$log" 2>&1 </dev/null &
    fi
    BENCH_LAST_PID=$!
    echo "$BENCH_LAST_PID" >>"$pidfile"
    bench_on_exit "kill $BENCH_LAST_PID; sleep 0.2; kill -9 $BENCH_LAST_PID"
}

# bench_wait_for SECONDS CMD...: polls CMD every 50 ms until it succeeds; fails after SECONDS.
bench_wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}

# bench_nginx NETNS DIR LISTEN...: nginx serving DIR/www/index.html (612 bytes, the size of nginx's welcome page)
# on each LISTEN address, access log off, keep-alive connections never closed by request count.
# NGINX_WORKERS (auto) and NGINX_DEFAULT_TYPE (text/html) adjust it.
bench_nginx() {
    local ns=$1 dir=$2
    shift 2
    mkdir -p "$dir/www" "$dir/tmp"
    [ -f "$dir/www/index.html" ] || head -c 612 /dev/zero | tr '\0' 'x' >"$dir/www/index.html"
    local listen="" l
    for l in "$@"; do listen+="        listen $l;"$'\n'; done
    cat >"$dir/nginx.conf" <<EOF
user root;
worker_processes ${NGINX_WORKERS:-auto};
pid $dir/nginx.pid;
error_log $dir/nginx-error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    default_type ${NGINX_DEFAULT_TYPE:-text/html};
    keepalive_requests 10000000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
$listen        root $dir/www;
        index index.html;
    }
}
EOF
    bench_start "$ns" "$dir/pids" "$dir/nginx.log" nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;'
}

# bench_machine: one line describing the machine, for tables.
bench_machine() {
    echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), kernel $(uname -r)," \
        "load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

# Whether the kernel has tcx (Linux 6.6), where the agent moves its tc hooks from clsact filters to tcx links.
bench_kernel_has_tcx() {
    local major minor
    IFS=. read -r major minor _ <<<"$(uname -r)"
    [ "$major" -gt 6 ] || { [ "$major" -eq 6 ] && [ "${minor%%[!0-9]*}" -ge 6 ]; }
}

bench_py() { python3 "$BENCH_DIR/benchlib.py" "$@"; }

# The interleaved rounds of a wrk benchmark between two pods: every case of $CASES, $ROUNDS rounds, each with
# keep-alive and with a new connection per request, the order rotated every round so no case always runs first
# (or right after a heavy one). The caller defines case_on NAME and case_url NAME, and case_off NAME when a case
# must be undone; wrk runs in $CLIENT with $THREADS, $CONNECTIONS and $DURATION, results are appended to $RESULTS.
# $MODES (default "keepalive close") may add `paced`: keep-alive, each connection waiting $PACE_MS (2) ms after
# every answer before its next request (wrk's Lua `delay`), so that every case is offered about the same request
# rate, below what the slowest can serve: latencies compared at the same load rather than at each one's saturation.
# $1: the file naming the processes whose CPU is counted.
bench_wrk_rounds() {
    local pids=$1 case_list round i name url mode extra modes pace_script stats=()
    [ "${BPF_STATS:-0}" = 1 ] && stats=(--bpf-stats)
    IFS=, read -r -a case_list <<<"$CASES"
    read -r -a modes <<<"${MODES:-keepalive close}"
    pace_script=$BENCH_WORK/pace.lua
    echo "function delay() return ${PACE_MS:-2} end" >"$pace_script"
    bench_log "machine: $(bench_machine)"
    bench_log "$ROUNDS rounds x ${#case_list[@]} cases x ${#modes[@]} modes (${modes[*]}) x ${DURATION}s"
    for ((round = 1; round <= ROUNDS; round++)); do
        for ((i = 0; i < ${#case_list[@]}; i++)); do
            name=${case_list[$(((i + round - 1) % ${#case_list[@]}))]}
            case_on "$name"
            url=$(case_url "$name")
            for mode in "${modes[@]}"; do
                extra=()
                [ "$mode" = close ] && extra=(-H "Connection: close")
                [ "$mode" = paced ] && extra=(-s "$pace_script")
                bench_py run --case "$name" --mode "$mode" --round "$round" --pids-file "$pids" "${stats[@]}" \
                    --output "$BENCH_WORK/wrk-$name-$mode-$round.txt" -- \
                    ip netns exec "$CLIENT" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency \
                    "${extra[@]}" "$url" >>"$RESULTS"
                bench_log "round $round $name $mode: $(tail -1 "$RESULTS" | bench_py brief)"
            done
            if declare -F case_off >/dev/null; then case_off "$name"; fi
        done
    done
}

# bench_agent_start NODE DIR [ARGS...]: runs nodeagent inside the node namespace with a private socket
# (DIR/agent.sock), state directory (DIR/state) and pin root (/sys/fs/bpf/<prefix>-agent), as the end-to-end
# tests do, and waits until GET /v1/healthz answers. Its socket load balancer attaches to a cgroup of the bench's
# own (AGENT_CGROUP, under the cgroup v2 mount), never the machine's root cgroup; a later --cgroup-root in ARGS
# wins. On exit the agent is stopped and `nodeagent cleanup` removes its tc programs, pins and state.
bench_agent_start() {
    AGENT_NODE=$1 AGENT_DIR=$2
    shift 2
    AGENT_SOCK=$AGENT_DIR/agent.sock
    AGENT_BPF=/sys/fs/bpf/${BENCH_PREFIX}-agent
    mkdir -p "$AGENT_DIR/state"
    AGENT_CGROUP=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts)/${BENCH_PREFIX}-agent
    mkdir -p "$AGENT_CGROUP"
    if [ -z "${AGENT_CLEANUP_REGISTERED:-}" ]; then
        bench_on_exit bench_agent_remove
        AGENT_CLEANUP_REGISTERED=1
    fi
    rm -f "$AGENT_SOCK"
    # The poller runs before the agent starts, so AGENT_READY_MS is exec -> first 200 on /v1/healthz.
    local line started ready poll poll_pid
    coproc BENCH_POLL { python3 "$BENCH_DIR/benchlib.py" wait-ready --socket "$AGENT_SOCK" --timeout 60; }
    # Copies of the pipe and pid: bash unsets BENCH_POLL and BENCH_POLL_PID as soon as it reaps the poller.
    poll_pid=$BENCH_POLL_PID
    exec {poll}<&"${BENCH_POLL[0]}"
    read -r line <&"$poll"
    started=$(date +%s%N)
    # Inside its cgroup root, as an agent on a node is inside the whole hierarchy: its L7 self-test needs that.
    sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$AGENT_CGROUP" \
        nsenter --net="/var/run/netns/$AGENT_NODE" "$AGENT" --socket "$AGENT_SOCK" --state-dir "$AGENT_DIR/state" \
        --bpf-root "$AGENT_BPF" --cgroup-root "$AGENT_CGROUP" "$@" >>"$AGENT_DIR/agent.log" 2>&1 </dev/null &
    AGENT_PID=$!
    read -r ready <&"$poll" || ready=timeout
    exec {poll}<&-
    wait "$poll_pid" 2>/dev/null || true
    if [ "$ready" = timeout ] || ! kill -0 "$AGENT_PID" 2>/dev/null; then
        tail -20 "$AGENT_DIR/agent.log" >&2
        bench_die "nodeagent did not answer /v1/healthz within 60 s"
    fi
    AGENT_READY_MS=$(((ready - started) / 1000000))
}

# Stops the agent (SIGTERM, SIGKILL after 10 s); pins, programs and state stay, as after a real stop.
bench_agent_stop() {
    [ -n "${AGENT_PID:-}" ] || return 0
    kill -TERM "$AGENT_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 200; i++)); do
        kill -0 "$AGENT_PID" 2>/dev/null || break
        sleep 0.05
    done
    kill -9 "$AGENT_PID" 2>/dev/null || true
    wait "$AGENT_PID" 2>/dev/null || true
    AGENT_PID=""
}

# Stops the agent and removes everything it installed.
bench_agent_remove() {
    [ -n "${AGENT_DIR:-}" ] || return 0
    bench_agent_stop
    if [ -e "/var/run/netns/$AGENT_NODE" ]; then
        nsenter --net="/var/run/netns/$AGENT_NODE" "$AGENT" cleanup --socket "$AGENT_SOCK" \
            --state-dir "$AGENT_DIR/state" --bpf-root "$AGENT_BPF" >>"$AGENT_DIR/agent.log" 2>&1 || true
    fi
    rm -rf "$AGENT_BPF"
    if [ -n "${AGENT_CGROUP:-}" ] && [ -d "$AGENT_CGROUP" ]; then
        [ -e "$AGENT_CGROUP/cgroup.kill" ] && echo 1 >"$AGENT_CGROUP/cgroup.kill"
        for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$AGENT_CGROUP" 2>/dev/null && break; sleep 0.1; done
    fi
}

# bench_api METHOD PATH [BODY]: one request to the agent's API; fails on a non-2xx answer.
bench_api() {
    if [ $# -ge 3 ]; then
        curl -sSf --max-time 30 --unix-socket "$AGENT_SOCK" -X "$1" --data-binary "$3" "http://localhost$2"
    else
        curl -sSf --max-time 30 --unix-socket "$AGENT_SOCK" -X "$1" "http://localhost$2"
    fi
}

bench_nodectl() { "$NODECTL" --socket "$AGENT_SOCK" "$@"; }
