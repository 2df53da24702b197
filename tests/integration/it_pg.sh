#!/usr/bin/env bash
# The pg module against the harness's Postgres: statements, transactions, set_tenant,
# pipelined batches, SQLSTATE classification, reconnect (tests/integration/progs/pg_test.c).
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/lib/common.sh"

start=$(now_ms)
CK_VERBOSITY=normal "$IMP_BUILD_DIR/bin/pg_test"
say "pg_test passed in $(($(now_ms) - start)) ms"
