#!/usr/bin/env bash
# Fengqiao: start the whole system locally.
#
#   deploy/local/run.sh [serve args...]
#
# Ensures NATS (JetStream) and PostgreSQL are up (deploy/local/stack.sh up),
# builds the release binary, runs the schema migrations, then runs
# `fengqiao serve` in the foreground on loopback. Extra arguments are passed
# to `fengqiao serve`. Stop the server with Ctrl-C; stop the stack with
# deploy/local/stop.sh. See docs/local-stack.md.

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=deploy/local/stack.sh
source "$here/stack.sh"
cd "$STACK_REPO_ROOT"

if ! command -v cargo >/dev/null 2>&1 && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || stack_die "cargo not found; install Rust with rustup first"

stack_up
stack_export_env
export RUST_LOG="${RUST_LOG:-info}"

stack_log "building: cargo build --release -p fengqiao"
cargo build --release -p fengqiao

bin="${CARGO_TARGET_DIR:-target}/release/fengqiao"
[[ -x $bin ]] || stack_die "$bin not found after cargo build"

stack_log "running migrations: $bin migrate"
"$bin" migrate

stack_log "serving: gRPC $FENGQIAO_GRPC_ADDR, hotline bridge HTTP $FENGQIAO_HOTLINE_ADDR (Ctrl-C to stop)"
exec "$bin" serve "$@"
