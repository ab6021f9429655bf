#!/usr/bin/env bash
# Fengqiao: stop the local stack started by deploy/local/stack.sh (run.sh, test.sh).
#
# Stops the NATS server this checkout started (pid file .local/nats/nats.pid)
# and, only if stack.sh started a PostgreSQL cluster itself, that cluster too.
# A PostgreSQL (or NATS) that was already running is left alone. Data is kept;
# see docs/local-stack.md for how to wipe it.

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
exec "$here/stack.sh" down
