#!/usr/bin/env bash
# Imperium on one machine.
#
#   deploy/dev.sh up            install what is missing, build, start the whole fleet in .dev/
#   deploy/dev.sh down          stop everything started by `up`
#   deploy/dev.sh status        what is running, with addresses
#   deploy/dev.sh logs [BIN]    the last lines of one binary's log (or all); -f to follow
#   deploy/dev.sh test          install what is missing, build with ASan+UBSan, run every test
#   deploy/dev.sh bench         build optimised and run every benchmark in tests/bench/
#
# Every IMP_* variable in the environment of `up` is passed to the binaries it starts, on top
# of the development defaults (this is how the fleet is pointed at real providers).
# DEV_DIR (default .dev) holds the data, logs and pids; DEV_PG_PORT, DEV_REDIS_PORT,
# DEV_BROKER_CONTROL_PORT, DEV_METRICS_BASE_PORT (+1 … +10) and DEV_INGRESS_PORT its ports.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEV=${DEV_DIR:-$ROOT/.dev}
RUN="$DEV/run"
LOGS="$DEV/logs"
PG_BIN=${IMP_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
BUILD_DEV="$ROOT/build/dev"
BUILD_TEST="$ROOT/build/test"
BUILD_BENCH="$ROOT/build/bench"

DEV_PG_PORT=${DEV_PG_PORT:-55432}
DEV_REDIS_PORT=${DEV_REDIS_PORT:-56379}
DEV_BROKER_CONTROL_PORT=${DEV_BROKER_CONTROL_PORT:-59099}
DEV_METRICS_BASE_PORT=${DEV_METRICS_BASE_PORT:-59100}
DEV_INGRESS_PORT=${DEV_INGRESS_PORT:-8080}

# The fleet, in start order. Binaries that are not built yet are skipped.
FLEET=(imperium-control imperium-indexer imperium-dialog imperium-rag imperium-qc
       imperium-send imperium-metering imperium-sentinel imperium-api imperium-ingress)

say() { printf 'dev: %s\n' "$*" >&2; }
die() { printf 'dev: error: %s\n' "$*" >&2; exit 1; }

jobs_n() { nproc 2>/dev/null || echo 2; }

build() { # build DIR [cmake args…]
    local dir=$1
    shift
    cmake -S "$ROOT" -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j "$(jobs_n)" -- --no-print-directory >/dev/null ||
        cmake --build "$dir" -j 1 # rerun serially so the first error is readable
}

# --- process bookkeeping ---------------------------------------------------------------

pid_of() { [ -f "$RUN/$1.pid" ] && cat "$RUN/$1.pid" || true; }

running() { # running PID: the process exists and is not a zombie waiting to be reaped
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) && [ -n "$st" ] && [ "${st:0:1}" != Z ]
}

alive() { # alive NAME: its recorded process runs
    local pid
    pid=$(pid_of "$1")
    [ -n "$pid" ] && running "$pid"
}

dev_env_exec() { # dev_env_exec CMD… : replaces this shell with CMD, given .dev/env and the
    # user's saved IMP_*
    set -a
    # shellcheck disable=SC1091
    [ -f "$DEV/env" ] && . "$DEV/env"
    # shellcheck disable=SC1091
    [ -f "$DEV/user.env" ] && . "$DEV/user.env"
    set +a
    exec "$@"
}

with_dev_env() { # with_dev_env CMD… : runs CMD with the dev environment
    (dev_env_exec "$@")
}

start_bg() { # start_bg NAME CMD… : runs CMD with the dev environment, log and pid in .dev
    local name=$1
    shift
    if alive "$name"; then
        return 0
    fi
    # One fork, which becomes CMD: the pid recorded is CMD's own, the one `down` stops.
    dev_env_exec "$@" >>"$LOGS/$name.log" 2>&1 &
    echo $! >"$RUN/$name.pid"
}

dev_psql() { # dev_psql ARGS… : psql as the superuser on the dev cluster
    runuser -u postgres -- "$PG_BIN/psql" -h 127.0.0.1 -p "$DEV_PG_PORT" -U postgres -qAt "$@"
}

stop_pid() { # stop_pid NAME : TERM, wait up to 10 s, then KILL
    local name=$1 pid
    pid=$(pid_of "$name")
    [ -n "$pid" ] || return 0
    if running "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            running "$pid" || break
            sleep 0.1
        done
        if running "$pid"; then
            say "$name did not stop in 10 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$RUN/$name.pid"
}

wait_port() { # wait_port PORT WHAT SECONDS
    local port=$1 what=$2 secs=${3:-20}
    for _ in $(seq 1 $((secs * 10))); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    die "$what did not listen on 127.0.0.1:$port within ${secs}s (see $LOGS)"
}

# --- services ---------------------------------------------------------------------------

start_postgres() {
    local data="$DEV/pg"
    if [ ! -f "$data/PG_VERSION" ]; then
        say "initialising Postgres in $data"
        mkdir -p "$data"
        chown postgres:postgres "$data"
        chmod 700 "$data"
        runuser -u postgres -- "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust \
            --encoding=UTF8 --locale=C.UTF-8 >"$LOGS/initdb.log" 2>&1 ||
            die "initdb failed (see $LOGS/initdb.log)"
    fi
    if runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        return 0
    fi
    chown postgres:postgres "$LOGS"
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$data" -l "$LOGS/postgres.log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -p $DEV_PG_PORT -k $data" start >/dev/null ||
        die "Postgres did not start (see $LOGS/postgres.log)"
    dev_psql -c "SELECT 1 FROM pg_database WHERE datname = 'imperium'" | grep -q 1 ||
        runuser -u postgres -- "$PG_BIN/createdb" -h 127.0.0.1 -p "$DEV_PG_PORT" -U postgres imperium
}

stop_postgres() {
    [ -f "$DEV/pg/PG_VERSION" ] || return 0
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DEV/pg" -m fast -w stop >/dev/null 2>&1 || true
}

start_redis() {
    mkdir -p "$DEV/redis"
    start_bg redis redis-server --bind 127.0.0.1 --port "$DEV_REDIS_PORT" --save "" \
        --appendonly no --dir "$DEV/redis" --protected-mode yes
    wait_port "$DEV_REDIS_PORT" redis 10
}

start_devbroker() {
    local bin="$BUILD_DEV/bin/imperium-devbroker" file="$DEV/kafka.bootstrap"
    [ -x "$bin" ] || die "imperium-devbroker was not built"
    if ! alive devbroker; then
        BROKER_FRESH=1
        rm -f "$file"
        IMP_DEVBROKER_TOPICS="$ROOT/deploy/topics.conf" IMP_DEVBROKER_BOOTSTRAP_FILE="$file" \
            IMP_DEVBROKER_CONTROL_PORT="$DEV_BROKER_CONTROL_PORT" start_bg devbroker "$bin"
    fi
    # Longer than the broker's own 10 s check of its topics, which ends in an exit with the
    # reason in its log.
    for _ in $(seq 1 300); do
        [ -s "$file" ] && return 0
        alive devbroker || die "imperium-devbroker exited (see $LOGS/devbroker.log)"
        sleep 0.1
    done
    die "imperium-devbroker did not write $file within 30s (see $LOGS/devbroker.log)"
}

# The key that encrypts secrets at rest: made once per .dev and kept.
secret_key() {
    if [ ! -s "$DEV/secret.key" ]; then
        (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DEV/secret.key")
    fi
    cat "$DEV/secret.key"
}

write_env() {
    local brokers key
    brokers=$(cat "$DEV/kafka.bootstrap")
    key=$(secret_key)
    (umask 077 && cat >"$DEV/env" <<EOF
# Written by deploy/dev.sh up. Source it: set -a; . .dev/env; set +a
# IMP_PG_DSN is the workers' role (row-level security applies); IMP_PG_ADMIN_DSN migrates.
IMP_PG_DSN=postgresql://imperium_app@127.0.0.1:$DEV_PG_PORT/imperium
IMP_PG_APP_DSN=postgresql://imperium_app@127.0.0.1:$DEV_PG_PORT/imperium
IMP_PG_API_DSN=postgresql://imperium_api@127.0.0.1:$DEV_PG_PORT/imperium
IMP_PG_ADMIN_DSN=postgresql://postgres@127.0.0.1:$DEV_PG_PORT/imperium
IMP_REDIS_URL=redis://127.0.0.1:$DEV_REDIS_PORT/0
IMP_KAFKA_BROKERS=$brokers
# The dev broker answers an empty fetch only after the whole fetch.wait.max.ms, even when
# data arrives meanwhile (a real broker answers at once): keep the wait short here.
IMP_KAFKA_CONSUMER_PROPS=fetch.wait.max.ms=5
IMP_DEVBROKER_CONTROL=127.0.0.1:$DEV_BROKER_CONTROL_PORT
IMP_MIGRATIONS_DIR=$ROOT/migrations
IMP_SECRET_KEY=$key
IMP_INGRESS_LISTEN=127.0.0.1:$DEV_INGRESS_PORT
IMP_INGRESS_URL=http://127.0.0.1:$DEV_INGRESS_PORT
IMP_LOG_LEVEL=info
# Outbound providers: empty sends every reply to the sink (recorded, not sent). Set them
# (or a channel's api_url) to reach real providers or local fakes.
IMP_CHATFLOW_API_URL=
IMP_WHATSAPP_API_URL=
IMP_TELEGRAM_API_URL=
EOF
    )
}

# The user's own IMP_* settings, saved at `up` so that restarts keep them.
save_user_env() {
    : >"$DEV/user.env"
    chmod 600 "$DEV/user.env"
    while IFS= read -r name; do
        printf '%s=%q\n' "$name" "${!name}" >>"$DEV/user.env"
    done < <(compgen -e | grep '^IMP_' || true)
}

migrate() {
    local bin="$BUILD_DEV/bin/imperium-migrate"
    [ -x "$bin" ] || die "imperium-migrate was not built"
    (
        set -a
        . "$DEV/env"
        set +a
        IMP_PG_DSN=$IMP_PG_ADMIN_DSN "$bin"
    ) >>"$LOGS/migrate.log" 2>&1 || die "migrations failed (see $LOGS/migrate.log)"
}

start_fleet() {
    local i=0 bin
    for name in "${FLEET[@]}"; do
        i=$((i + 1))
        bin="$BUILD_DEV/bin/$name"
        [ -x "$bin" ] || continue
        IMP_METRICS_PORT=$((DEV_METRICS_BASE_PORT + i)) start_bg "$name" "$bin"
    done
}

# The demo tenant, once the fleet can take commands.
seed_demo() {
    [ -x "$BUILD_DEV/bin/imperium-control" ] && [ -f "$ROOT/deploy/demo.sh" ] || return 0
    IMP_DEMO_DIR="$DEV" BUILD="$BUILD_DEV" bash "$ROOT/deploy/demo.sh" "$BUILD_DEV" ||
        die "seeding the demo tenant failed (see $LOGS/imperium-control.log)"
}

# The dev broker keeps its topics in memory: when it starts afresh next to a database that
# already holds tenants, their snapshots are published again so that the ingress knows them.
republish_tenants() {
    [ "${BROKER_FRESH:-0}" = 1 ] || return 0
    local slug
    for slug in $(dev_psql -d imperium -c "SELECT slug FROM tenants ORDER BY slug"); do
        # shellcheck disable=SC2016
        with_dev_env sh -c 'IMP_PG_DSN=$IMP_PG_APP_DSN IMP_CONTROL_ACTOR=dev.sh exec "$@"' sh \
            "$BUILD_DEV/bin/imperium-control" tenant publish "$slug" --timeout 60s >/dev/null ||
            die "publishing tenant $slug's snapshot failed (see $LOGS/imperium-control.log)"
    done
}

# --- commands -------------------------------------------------------------------------------

cmd_up() {
    "$ROOT/deploy/bootstrap.sh"
    mkdir -p "$RUN" "$LOGS"
    save_user_env
    say "building into $BUILD_DEV"
    build "$BUILD_DEV" -DCMAKE_BUILD_TYPE=RelWithDebInfo
    start_postgres
    start_redis
    start_devbroker
    write_env
    migrate
    start_fleet
    sleep 0.5
    republish_tenants
    seed_demo
    cmd_status
    local rel=${DEV#"$ROOT"/}
    cat <<EOF

The fleet runs. Its addresses are in $rel/env:
    set -a; . $rel/env; set +a
Logs: deploy/dev.sh logs [binary]    Stop: deploy/dev.sh down
EOF
}

cmd_down() {
    local i
    for ((i = ${#FLEET[@]} - 1; i >= 0; i--)); do
        stop_pid "${FLEET[$i]}"
    done
    stop_pid devbroker
    stop_pid redis
    stop_postgres
    say "stopped"
}

cmd_status() {
    printf '%-20s %-8s %s\n' PROCESS PID STATE
    if [ -f "$DEV/pg/postmaster.pid" ] &&
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$DEV/pg" status >/dev/null 2>&1; then
        printf '%-20s %-8s %s\n' postgres "$(head -n 1 "$DEV/pg/postmaster.pid")" \
            "running on 127.0.0.1:$DEV_PG_PORT"
    else
        printf '%-20s %-8s %s\n' postgres - stopped
    fi
    for name in redis devbroker "${FLEET[@]}"; do
        if alive "$name"; then
            printf '%-20s %-8s %s\n' "$name" "$(pid_of "$name")" running
        elif [ -f "$RUN/$name.pid" ]; then
            printf '%-20s %-8s %s\n' "$name" - "exited (see $LOGS/$name.log)"
        fi
    done
}

cmd_logs() {
    local follow=()
    if [ "${1:-}" = "-f" ]; then
        follow=(-f)
        shift
    fi
    if [ -n "${1:-}" ]; then
        local name=${1#imperium-}
        local f="$LOGS/$name.log"
        [ -f "$f" ] || f="$LOGS/imperium-$name.log"
        [ -f "$f" ] || die "no log for $1 in $LOGS"
        tail -n 200 "${follow[@]}" "$f"
    else
        tail -n 50 "${follow[@]}" "$LOGS"/*.log
    fi
}

cmd_test() {
    "$ROOT/deploy/bootstrap.sh"
    # The optimised build that `up` runs is compiled too: -O2 finds warnings -O0 does not.
    say "building the fleet as \`up\` does into $BUILD_DEV"
    build "$BUILD_DEV" -DCMAKE_BUILD_TYPE=RelWithDebInfo
    say "building with ASan+UBSan into $BUILD_TEST"
    build "$BUILD_TEST" -DCMAKE_BUILD_TYPE=Debug -DIMP_SANITIZE=ON
    say "running every test"
    ctest --test-dir "$BUILD_TEST" --output-on-failure -j "$(jobs_n)" "$@"
}

cmd_bench() {
    "$ROOT/deploy/bootstrap.sh"
    say "building optimised into $BUILD_BENCH"
    build "$BUILD_BENCH" -DCMAKE_BUILD_TYPE=Release
    local found=0
    for b in "$ROOT"/tests/bench/*/run.sh; do
        [ -f "$b" ] || continue
        found=1
        say "bench $(basename "$(dirname "$b")")"
        IMP_SOURCE_DIR="$ROOT" IMP_BUILD_DIR="$BUILD_BENCH" \
            bash "$ROOT/tests/harness.sh" bash "$b"
    done
    [ $found -eq 1 ] || say "no benchmarks in tests/bench/"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
logs) shift; cmd_logs "$@" ;;
test) shift; cmd_test "$@" ;;
bench) cmd_bench ;;
*)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
