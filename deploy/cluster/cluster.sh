#!/usr/bin/env bash
# Fengqiao: a three-node NATS cluster on loopback, for trying a deployment beyond one server.
#
#   deploy/cluster/cluster.sh up      start the three servers (installing nats-server if needed)
#   deploy/cluster/cluster.sh down    stop them (data is kept)
#   deploy/cluster/cluster.sh status  one line per node; exit 1 if one is down
#   deploy/cluster/cluster.sh env     print `export FENGQIAO_...=...` lines for Fengqiao
#
# Each node is rendered from deploy/cluster/nats-node.conf.template (JetStream,
# `sync_interval: always`, cluster `fengqiao`) into .local/cluster/<node>/; the fault-injection
# tests render the same template on free ports. Fengqiao on this cluster: eval the `env` output
# (all three URLs, FENGQIAO_REPLICAS=3) and run `fengqiao serve`.
# See docs/deployment.md.

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=deploy/local/stack.sh
source "$here/../local/stack.sh"

CLUSTER_DIR="$STACK_LOCAL_DIR/cluster"
CLUSTER_TEMPLATE="$here/nats-node.conf.template"
CLUSTER_NODES=(fengqiao-1 fengqiao-2 fengqiao-3)
# Ports: clients 14231-14233, monitoring 18231-18233, routes 16231-16233 (base overridable).
: "${FENGQIAO_CLUSTER_CLIENT_BASE:=14230}"
: "${FENGQIAO_CLUSTER_MONITOR_BASE:=18230}"
: "${FENGQIAO_CLUSTER_ROUTE_BASE:=16230}"

cluster_client_port() { echo $((FENGQIAO_CLUSTER_CLIENT_BASE + $1)); }
cluster_monitor_port() { echo $((FENGQIAO_CLUSTER_MONITOR_BASE + $1)); }
cluster_route_port() { echo $((FENGQIAO_CLUSTER_ROUTE_BASE + $1)); }

cluster_urls() {
    local i urls=()
    for i in 1 2 3; do urls+=("nats://127.0.0.1:$(cluster_client_port "$i")"); done
    (IFS=,; echo "${urls[*]}")
}

# Renders node $1 (1-3) and prints its config path.
cluster_render() {
    local i=$1 name=${CLUSTER_NODES[$(($1 - 1))]} dir conf text routes=() j
    dir="$CLUSTER_DIR/$name"
    mkdir -p "$dir/store"
    for j in 1 2 3; do
        ((j == i)) || routes+=("\"nats-route://127.0.0.1:$(cluster_route_port "$j")\"")
    done
    text=$(<"$CLUSTER_TEMPLATE")
    text=${text//@NATS_NAME@/"$name"}
    text=${text//@NATS_HOST@/127.0.0.1}
    text=${text//@NATS_PORT@/"$(cluster_client_port "$i")"}
    text=${text//@NATS_MONITOR_PORT@/"$(cluster_monitor_port "$i")"}
    text=${text//@NATS_CLUSTER_PORT@/"$(cluster_route_port "$i")"}
    text=${text//@NATS_ROUTES@/"$(IFS=,; echo "${routes[*]}")"}
    text=${text//@NATS_STORE_DIR@/"$(stack_conf_quote "$dir/store")"}
    text=${text//@NATS_PID_FILE@/"$(stack_conf_quote "$dir/nats.pid")"}
    conf="$dir/nats.conf"
    printf '%s\n' "$text" >"$conf"
    echo "$conf"
}

# Pid of node $1 if it runs with this checkout's config.
cluster_pid() {
    local name=${CLUSTER_NODES[$(($1 - 1))]} pid
    [[ -f $CLUSTER_DIR/$name/nats.pid ]] || return 1
    pid=$(tr -dc '0-9' <"$CLUSTER_DIR/$name/nats.pid")
    [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF "$CLUSTER_DIR/$name/nats.conf" || return 1
    echo "$pid"
}

cluster_healthy() {
    local body
    body=$(stack_http_get 127.0.0.1 "$(cluster_monitor_port "$1")" /healthz) || return 1
    [[ $body =~ \"status\":\ *\"ok\" ]]
}

cluster_up() {
    stack_ensure_nats_bin
    local i name conf
    for i in 1 2 3; do
        name=${CLUSTER_NODES[$((i - 1))]}
        if cluster_pid "$i" >/dev/null; then
            stack_log "cluster: $name already running (pid $(cluster_pid "$i"))"
            continue
        fi
        stack_tcp_open 127.0.0.1 "$(cluster_client_port "$i")" \
            && stack_die "port $(cluster_client_port "$i") is taken; set FENGQIAO_CLUSTER_CLIENT_BASE"
        conf=$(cluster_render "$i")
        stack_log "cluster: starting $name on 127.0.0.1:$(cluster_client_port "$i")"
        stack_spawn_detached "$CLUSTER_DIR/$name/nats.log" "$STACK_NATS_BIN" -c "$conf"
    done
    local deadline=$((SECONDS + 30))
    for i in 1 2 3; do
        until cluster_healthy "$i"; do
            if ((SECONDS >= deadline)); then
                tail -n 20 "$CLUSTER_DIR/${CLUSTER_NODES[$((i - 1))]}/nats.log" >&2 || true
                stack_die "cluster node ${CLUSTER_NODES[$((i - 1))]} not healthy within 30 s"
            fi
            sleep 0.25
        done
    done
    stack_log "cluster: up ($(cluster_urls))"
}

cluster_down() {
    local i pid
    for i in 1 2 3; do
        if pid=$(cluster_pid "$i"); then
            stack_log "cluster: stopping ${CLUSTER_NODES[$((i - 1))]} (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for i in 1 2 3; do
        local deadline=$((SECONDS + 30))
        while pid=$(cluster_pid "$i") && ((SECONDS < deadline)); do sleep 0.25; done
        if pid=$(cluster_pid "$i"); then kill -KILL "$pid" 2>/dev/null || true; fi
    done
    stack_log "cluster: stopped"
}

cluster_status() {
    local i rc=0 name
    for i in 1 2 3; do
        name=${CLUSTER_NODES[$((i - 1))]}
        if cluster_healthy "$i"; then
            stack_log "cluster: $name up   nats://127.0.0.1:$(cluster_client_port "$i")"
        else
            stack_log "cluster: $name DOWN nats://127.0.0.1:$(cluster_client_port "$i")"
            rc=1
        fi
    done
    return "$rc"
}

cluster_env() {
    printf "export FENGQIAO_NATS_URL='%s'\n" "$(cluster_urls)"
    printf 'export FENGQIAO_REPLICAS=3\n'
}

case "${1:-}" in
up) stack_locked cluster_up ;;
down) stack_locked cluster_down ;;
status) cluster_status ;;
env) cluster_env ;;
*)
    echo "usage: $0 up|down|status|env" >&2
    exit 2
    ;;
esac
