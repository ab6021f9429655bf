#!/usr/bin/env bash
# Fengqiao: run the whole test suite against the local stack.
#
#   deploy/local/test.sh [test runner args...]
#
# Ensures NATS (JetStream) and PostgreSQL are up (deploy/local/stack.sh up),
# exports FENGQIAO_* so the tests find them, prints the stack status, then runs
# `cargo nextest run --workspace --no-fail-fast` (or `cargo test --workspace
# --no-fail-fast` when cargo-nextest is not installed). Extra arguments go to
# the test runner. The exit code is the test runner's.
#
# Under CI (CI=true) the services this run had to start itself are stopped
# again afterwards; set FENGQIAO_STACK_KEEP=1 to keep them.
# See docs/local-stack.md.

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=deploy/local/stack.sh
source "$here/stack.sh"
cd "$STACK_REPO_ROOT"

if ! command -v cargo >/dev/null 2>&1 && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || stack_die "cargo not found; install Rust with rustup first"

# What was already running before this run, so CI can stop only what it started.
stack_pg_parse_url
nats_was_up=0
pg_was_up=0
if stack_nats_managed && stack_nats_healthy; then nats_was_up=1; fi
if stack_pg_is_local && stack_pg_ready; then pg_was_up=1; fi

stack_up
stack_export_env
stack_status || true

if [[ ${CI:-} == true && ${FENGQIAO_STACK_KEEP:-0} != 1 ]]; then
    cleanup() {
        set +e
        if ((nats_was_up == 0)); then stack_locked stack_nats_down; fi
        if ((pg_was_up == 0)); then stack_locked stack_pg_down; fi
    }
    trap cleanup EXIT
fi

if cargo nextest --version >/dev/null 2>&1; then
    runner=(cargo nextest run --workspace --no-fail-fast)
else
    runner=(cargo test --workspace --no-fail-fast)
fi
stack_log "running: ${runner[*]}${*:+ $*}"
set +e
"${runner[@]}" "$@"
rc=$?
set -e
stack_log "test run finished with exit code $rc"
exit "$rc"
