# shellcheck shell=bash
# Shared helpers for integration tests and the harness. Source this one file:
#
#   source "$IMP_SOURCE_DIR/tests/lib/common.sh"
#
# It brings: say/die (messages), free_port / wait_for_port / wait_for_file / wait_for
# (ports.sh, wait.sh), start_bg / stop_bg (proc.sh: background processes the harness kills at
# teardown), psql_owner / psql_app / psql_api / pg_stop / pg_start (pg.sh), assert_eq and
# friends (assert.sh), devbroker_cmd (devbroker.sh).
IMP_TEST_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${IMP_SOURCE_DIR:=$(cd "$IMP_TEST_LIB/../.." && pwd)}"
: "${IMP_BUILD_DIR:=$IMP_SOURCE_DIR/build}"
: "${IMP_PG_BIN:=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}"
export IMP_SOURCE_DIR IMP_BUILD_DIR IMP_PG_BIN

say() { printf '%s: %s\n' "${IMP_LOG_TAG:-test}" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "${IMP_LOG_TAG:-test}" "$*" >&2
    exit 1
}

# clock_ms VAR: milliseconds since the epoch into VAR, read from bash itself (no process).
clock_ms() {
    local clock_us_=${EPOCHREALTIME/[.,]/}
    printf -v "$1" '%s' "${clock_us_:0:${#clock_us_}-3}"
}
# Milliseconds since the epoch (for timings).
now_ms() {
    local t
    clock_ms t
    echo "$t"
}

source "$IMP_TEST_LIB/ports.sh"
source "$IMP_TEST_LIB/wait.sh"
source "$IMP_TEST_LIB/proc.sh"
source "$IMP_TEST_LIB/pg.sh"
source "$IMP_TEST_LIB/assert.sh"
source "$IMP_TEST_LIB/devbroker.sh"
