#!/usr/bin/env bash
# Integration test harness: bash tests/harness.sh CMD ARGS…
#
# Starts Postgres (migrated), Redis and imperium-devbroker on free loopback ports in a fresh
# temporary directory, exports their addresses, runs CMD, and tears everything down by trap
# (also on failure, Ctrl-C, SIGTERM, and — through a watchdog — if the harness itself is
# killed). Exits with CMD's status.
#
# Exported to CMD:
#   IMP_PG_DSN           superuser DSN of the test database "imperium" (migrations run as it)
#   IMP_PG_APP_DSN       imperium_app (the workers' role: DML, row-level security applies)
#   IMP_PG_API_DSN       imperium_api (read-only, row-level security applies)
#   IMP_PG_PORT IMP_PG_DATA IMP_PG_SOCKDIR IMP_PG_BIN   the cluster (tests/lib/pg.sh)
#   IMP_REDIS_URL        redis://127.0.0.1:PORT/0
#   IMP_KAFKA_BROKERS    the devbroker's bootstrap servers
#   IMP_DEVBROKER_CONTROL  127.0.0.1:PORT of the devbroker's control channel
#   IMP_TEST_TMP         the temporary directory (logs in $IMP_TEST_TMP/logs)
#   IMP_HARNESS_PID      this harness (owner of port reservations)
#
# Environment read: IMP_SOURCE_DIR, IMP_BUILD_DIR (binaries in $IMP_BUILD_DIR/bin),
# IMP_KEEP_TMP=1 (keep the temporary directory), IMP_HARNESS_NO_KAFKA=1 (no devbroker: for
# working on the harness itself before the devbroker exists).
set -uo pipefail

IMP_LOG_TAG=harness
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/common.sh"

[ $# -gt 0 ] || die "usage: bash tests/harness.sh CMD ARGS…"

TEST_NAME=$(basename -- "${@: -1}" .sh | tr -c 'A-Za-z0-9_.\n-' '_' | cut -c1-40)
BIN="$IMP_BUILD_DIR/bin"
START_MS=$(now_ms)
CMD_PID=
WATCHDOG_PID=
TORN_DOWN=0

export IMP_HARNESS_PID=$$
# Scratch space (Postgres's data, logs, recordings) in memory when /dev/shm has room: a
# test's Postgres then costs no disk writeback. IMP_TEST_TMPDIR overrides.
tmp_root=${IMP_TEST_TMPDIR:-}
if [ -z "$tmp_root" ]; then
    tmp_root=/tmp
    [ -w /dev/shm ] && [ "$(df -Pk /dev/shm | awk 'NR == 2 {print $4}')" -gt 4194304 ] &&
        tmp_root=/dev/shm
fi
IMP_TEST_TMP=$(mktemp -d "$tmp_root/imp-it.$TEST_NAME.XXXXXX") || die "mktemp failed"
chmod 711 "$IMP_TEST_TMP" # the postgres user must reach its data directory
mkdir -p "$IMP_TEST_TMP/logs"
: >"$IMP_TEST_TMP/.pids"
export IMP_TEST_TMP

# ---- teardown --------------------------------------------------------------------------

dump_logs() {
    local log any=0
    for log in "$IMP_TEST_TMP"/logs/*.log; do
        [ -s "$log" ] || continue
        printf '\n----- last lines of %s -----\n' "$(basename "$log")" >&2
        tail -n 30 "$log" >&2
        any=1
    done
    [ "$any" = 0 ] || printf -- '-----\n' >&2
}

# Logs of a failed run outlive the temporary directory.
keep_logs() {
    local dest
    dest="$IMP_BUILD_DIR/test-logs/$TEST_NAME.$(date +%Y%m%d-%H%M%S).$$"
    mkdir -p "$dest" && cp -a "$IMP_TEST_TMP/logs/." "$dest/" 2>/dev/null
    say "logs of this run: $dest"
}

teardown() {
    local rc=$1
    [ "$TORN_DOWN" = 1 ] && return
    TORN_DOWN=1
    # Not waited for: a TERM that lands before its exec is lost, and then it only leaves
    # once this harness is gone (finding .torn-down, it does nothing).
    : >"$IMP_TEST_TMP/.torn-down"
    [ -n "$WATCHDOG_PID" ] && kill "$WATCHDOG_PID" 2>/dev/null
    # Clients first (the test and what it started), then the services.
    [ -n "$CMD_PID" ] && proc_alive "$CMD_PID" && signal_proc TERM "$CMD_PID"
    kill_registered 10 postgres redis devbroker
    pg_stop 15
    kill_registered 10
    release_ports
    if [ "$rc" != 0 ]; then
        dump_logs
        if [ "${IMP_KEEP_TMP:-0}" = 1 ]; then
            say "FAILED (exit $rc); everything is kept in $IMP_TEST_TMP"
        else
            keep_logs
            say "FAILED (exit $rc)"
        fi
    fi
    if [ "${IMP_KEEP_TMP:-0}" = 1 ]; then
        [ "$rc" = 0 ] && say "kept $IMP_TEST_TMP"
    else
        rm -rf "$IMP_TEST_TMP"
    fi
}

# A signal can reach a just-forked child before it execs its program, while it still runs
# this script's traps: only the harness itself tears down.
on_exit() {
    local rc=$?
    [ "$BASHPID" = "$$" ] || exit "$rc"
    teardown "$rc"
    exit "$rc"
}

on_signal() {
    [ "$BASHPID" = "$$" ] || exit "$2"
    say "interrupted by SIG$1"
    trap - EXIT
    teardown "$2"
    exit "$2"
}

# Started before the traps are set, so that it never runs them.
# If the harness is SIGKILLed (a ctest timeout), the watchdog still cleans up.
setsid bash "$IMP_TEST_LIB/watchdog.sh" "$$" "$IMP_TEST_TMP" </dev/null \
    >>"$IMP_TEST_TMP/logs/watchdog.log" 2>&1 &
WATCHDOG_PID=$!

trap on_exit EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM
trap 'on_signal HUP 129' HUP

# ---- services --------------------------------------------------------------------------

start_postgres() {
    export IMP_PG_DATA="$IMP_TEST_TMP/pg/data" IMP_PG_SOCKDIR="$IMP_TEST_TMP/pg/run"
    pg_create_cluster || die "could not create the Postgres cluster"
    local attempt rc
    for attempt in 1 2 3; do
        export IMP_PG_PORT
        IMP_PG_PORT=$(free_port)
        pg_launch
        pg_wait_ready 30
        rc=$?
        [ "$rc" = 0 ] && return 0
        [ "$rc" = 2 ] || return 1
        say "Postgres port $IMP_PG_PORT was taken; trying another"
    done
    return 1
}

create_database() {
    psql_as "host=$IMP_PG_SOCKDIR port=$IMP_PG_PORT user=postgres dbname=postgres" \
        -c "CREATE DATABASE imperium"
}

launch_redis() {
    REDIS_PORT=$(free_port)
    mkdir -p "$IMP_TEST_TMP/redis"
    start_bg redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode yes \
        --save "" --appendonly no --dir "$IMP_TEST_TMP/redis" --daemonize no --logfile ""
    REDIS_LAUNCHER=$BG_PID
}

redis_ready() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

wait_redis() {
    local attempt
    for attempt in 1 2 3; do
        wait_for 10 "Redis on port $REDIS_PORT" redis_ready && return 0
        proc_alive "$REDIS_LAUNCHER" && return 1
        say "Redis did not start on port $REDIS_PORT; trying another"
        launch_redis
    done
    return 1
}

launch_devbroker() {
    DEVBROKER_PORT=$(free_port)
    rm -f "$IMP_TEST_TMP/kafka.bootstrap"
    IMP_DEVBROKER_TOPICS="$IMP_SOURCE_DIR/deploy/topics.conf" \
        IMP_DEVBROKER_BOOTSTRAP_FILE="$IMP_TEST_TMP/kafka.bootstrap" \
        IMP_DEVBROKER_CONTROL_PORT="$DEVBROKER_PORT" \
        start_bg devbroker "$BIN/imperium-devbroker"
    DEVBROKER_LAUNCHER=$BG_PID
}

devbroker_ping() { [ "$(devbroker_cmd ping "127.0.0.1:$DEVBROKER_PORT")" = ok ]; }

devbroker_ready() { [ -s "$IMP_TEST_TMP/kafka.bootstrap" ] && devbroker_ping; }

wait_devbroker() {
    local attempt
    for attempt in 1 2 3; do
        wait_for 30 "imperium-devbroker (bootstrap file and control ping)" devbroker_ready &&
            return 0
        proc_alive "$DEVBROKER_LAUNCHER" && return 1
        say "imperium-devbroker exited during start-up; trying other ports"
        launch_devbroker
    done
    return 1
}

migrate() {
    IMP_PG_DSN="$IMP_PG_DSN" IMP_MIGRATIONS_DIR="$IMP_SOURCE_DIR/migrations" \
        IMP_PG_APP_PASSWORD="$APP_PASSWORD" IMP_PG_API_PASSWORD="$API_PASSWORD" \
        "$BIN/imperium-migrate" up >>"$IMP_TEST_TMP/logs/migrate.log" 2>&1
}

random_hex() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

export_addresses() {
    local host="127.0.0.1:$IMP_PG_PORT/imperium"
    export IMP_PG_DSN="postgresql://postgres@$host"
    export IMP_PG_APP_DSN="postgresql://imperium_app:$APP_PASSWORD@$host"
    export IMP_PG_API_DSN="postgresql://imperium_api:$API_PASSWORD@$host"
    export IMP_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
    if [ "${IMP_HARNESS_NO_KAFKA:-0}" != 1 ]; then
        export IMP_KAFKA_BROKERS
        IMP_KAFKA_BROKERS=$(tr -d ' \r\n' <"$IMP_TEST_TMP/kafka.bootstrap")
        export IMP_DEVBROKER_CONTROL="127.0.0.1:$DEVBROKER_PORT"
    fi
}

start_services() {
    [ -x "$BIN/imperium-migrate" ] || die "$BIN/imperium-migrate is not built"
    if [ "${IMP_HARNESS_NO_KAFKA:-0}" != 1 ]; then
        [ -x "$BIN/imperium-devbroker" ] ||
            die "$BIN/imperium-devbroker is not built (IMP_HARNESS_NO_KAFKA=1 skips Kafka)"
        launch_devbroker
    fi
    launch_redis
    start_postgres || die "Postgres did not start (log: $IMP_TEST_TMP/logs/postgres.log)"
    APP_PASSWORD=$(random_hex)
    API_PASSWORD=$(random_hex)
    export IMP_PG_DSN="postgresql://postgres@127.0.0.1:$IMP_PG_PORT/imperium"
    create_database >>"$IMP_TEST_TMP/logs/migrate.log" 2>&1 ||
        die "could not create the test database"
    migrate || die "migrations failed (log: $IMP_TEST_TMP/logs/migrate.log)"
    wait_redis || die "Redis did not start (log: $IMP_TEST_TMP/logs/redis.log)"
    if [ "${IMP_HARNESS_NO_KAFKA:-0}" != 1 ]; then
        wait_devbroker ||
            die "imperium-devbroker did not start (log: $IMP_TEST_TMP/logs/devbroker.log)"
    fi
    export_addresses
}

# ---- run -------------------------------------------------------------------------------

start_services
say "services ready in $(($(now_ms) - START_MS)) ms (postgres :$IMP_PG_PORT, redis :$REDIS_PORT$(
    [ -n "${IMP_KAFKA_BROKERS:-}" ] && echo ", kafka $IMP_KAFKA_BROKERS"))"

# CMD runs in its own process group, so teardown reaches whatever it forked.
setsid "$@" <&0 &
CMD_PID=$!
echo "$CMD_PID test" >>"$IMP_TEST_TMP/.pids"
wait "$CMD_PID"
RC=$?
CMD_PID=
say "$TEST_NAME exited with $RC after $(($(now_ms) - START_MS)) ms"
exit "$RC"
