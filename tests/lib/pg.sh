# shellcheck shell=bash
# The harness's Postgres: a cluster in $IMP_TEST_TMP/pg copied from a cached initdb template,
# run as the postgres user (initdb and postgres refuse root), fsync off, loopback only.
#
#   psql_owner ARGS…  psql as the superuser (sees every row; RLS does not apply)
#   psql_app ARGS…    psql as imperium_app (RLS applies; set app.tenant_id in a transaction)
#   psql_api ARGS…    psql as imperium_api (read-only, RLS applies)
#   pg_stop / pg_start  stop and start the cluster on the same port (outage tests)
#
# All psql helpers run with ON_ERROR_STOP, unaligned tuples-only output, no psqlrc.

# Bump when what the template holds changes (initdb options, pg_hba.conf).
PG_TEMPLATE_VERSION=1

as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

chown_postgres() { [ "$(id -u)" != 0 ] || chown -R postgres:postgres "$@"; }

# Superuser over loopback without a password; every other role with SCRAM passwords.
write_pg_hba() { # write_pg_hba DATADIR
    cat >"$1/pg_hba.conf" <<'HBA'
local all all                  trust
host  all postgres 127.0.0.1/32 trust
host  all all      127.0.0.1/32 scram-sha-256
HBA
}

pg_template_stamp() { echo "v$PG_TEMPLATE_VERSION $("$IMP_PG_BIN/postgres" --version)"; }

# Make sure $IMP_BUILD_DIR/.pgtemplate holds an initdb'd cluster (built once, under a lock,
# moved into place whole so a concurrent reader never sees half of it).
pg_ensure_template() {
    local tpl="$IMP_BUILD_DIR/.pgtemplate" stamp
    stamp=$(pg_template_stamp)
    [ "$(cat "$tpl/.imp-stamp" 2>/dev/null)" = "$stamp" ] && return 0
    mkdir -p "$IMP_BUILD_DIR"
    (
        flock -w 120 9 || die "timed out waiting for the Postgres template lock"
        [ "$(cat "$tpl/.imp-stamp" 2>/dev/null)" = "$stamp" ] && exit 0
        local work
        work=$(mktemp -d /tmp/imp-pgtemplate.XXXXXX)
        chmod 755 "$work"
        chown_postgres "$work"
        say "creating the Postgres template (once per build dir)"
        as_postgres "$IMP_PG_BIN/initdb" -D "$work/data" -U postgres -E UTF8 --no-locale \
            --auth=trust --no-sync --no-instructions >"$work/initdb.log" 2>&1 || {
            cat "$work/initdb.log" >&2
            rm -rf "$work"
            die "initdb failed"
        }
        write_pg_hba "$work/data"
        echo "$stamp" >"$work/data/.imp-stamp"
        rm -rf "$tpl" "$tpl.new"
        cp -a "$work/data" "$tpl.new" && mv "$tpl.new" "$tpl"
        rm -rf "$work"
    ) 9>"$IMP_BUILD_DIR/.pgtemplate.lock"
}

# Copy the template into $IMP_PG_DATA.
pg_create_cluster() {
    pg_ensure_template || return 1
    mkdir -p "$(dirname "$IMP_PG_DATA")" "$IMP_PG_SOCKDIR"
    cp -a "$IMP_BUILD_DIR/.pgtemplate" "$IMP_PG_DATA"
    rm -f "$IMP_PG_DATA/.imp-stamp"
    chmod 700 "$IMP_PG_DATA"
    chown_postgres "$IMP_PG_DATA" "$IMP_PG_SOCKDIR"
}

postmaster_pid() { head -n 1 "$IMP_PG_DATA/postmaster.pid" 2>/dev/null; }

pg_ready() { "$IMP_PG_BIN/pg_isready" -q -h "$IMP_PG_SOCKDIR" -p "$IMP_PG_PORT" -U postgres -d postgres; }

# Start the cluster in the background (registered as "postgres"); returns at once.
pg_launch() {
    local as=()
    [ "$(id -u)" = 0 ] && as=(runuser -u postgres --)
    start_bg postgres "${as[@]}" "$IMP_PG_BIN/postgres" -D "$IMP_PG_DATA" \
        -c port="$IMP_PG_PORT" -c listen_addresses=127.0.0.1 \
        -c unix_socket_directories="$IMP_PG_SOCKDIR" \
        -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
        -c shared_buffers=32MB -c max_connections=100 -c max_wal_size=1GB \
        -c log_line_prefix='%m [%p] %q%u@%d ' -c log_min_messages=warning \
        ${IMP_TEST_PG_OPTS:-}
    IMP_PG_LAUNCHER=$BG_PID
}

# Wait until it accepts connections. 0: ready; 2: it died because the port was taken;
# 1: anything else (the log says what).
pg_wait_ready() { # pg_wait_ready [TIMEOUT=30]
    local deadline=$(($(now_ms) + ${1:-30} * 1000))
    until pg_ready; do
        if ! proc_alive "$IMP_PG_LAUNCHER" ||
            [ "$(ps -o stat= -p "$IMP_PG_LAUNCHER" 2>/dev/null | cut -c1)" = Z ]; then
            grep -q "could not bind\|Address already in use" \
                "$IMP_TEST_TMP/logs/postgres.log" 2>/dev/null && return 2
            say "Postgres exited during start-up"
            return 1
        fi
        if [ "$(now_ms)" -ge "$deadline" ]; then
            say "timed out after ${1:-30}s waiting for Postgres on port $IMP_PG_PORT"
            return 1
        fi
        sleep 0.1
    done
}

pg_start() { # pg_start [TIMEOUT]: start the cluster again on its port (after pg_stop)
    pg_launch
    pg_wait_ready "${1:-30}"
}

# Fast shutdown (sessions are disconnected), SIGKILL to the postmaster after TIMEOUT.
pg_stop() { # pg_stop [TIMEOUT=30]
    local pid waited=0 timeout=${1:-30}
    [ -n "${IMP_PG_DATA:-}" ] || return 0
    pid=$(postmaster_pid)
    [ -n "$pid" ] && proc_alive "$pid" || return 0
    local kids
    kids=$(ps -o pid= --ppid "$pid" 2>/dev/null)
    kill -INT "$pid" 2>/dev/null
    while proc_alive "$pid" && [ "$waited" -lt $((timeout * 10)) ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    if proc_alive "$pid"; then
        say "Postgres did not stop within ${timeout}s; killing it"
        kill -KILL "$pid" $kids 2>/dev/null
    fi
    [ -n "${IMP_PG_LAUNCHER:-}" ] && wait "$IMP_PG_LAUNCHER" 2>/dev/null
    return 0
}

psql_as() { # psql_as DSN ARGS…
    local dsn=$1
    shift
    PGCONNECT_TIMEOUT=10 psql "$dsn" -X -v ON_ERROR_STOP=1 -q -A -t "$@"
}
psql_owner() { psql_as "$IMP_PG_DSN" "$@"; }
psql_app() { psql_as "$IMP_PG_APP_DSN" "$@"; }
psql_api() { psql_as "$IMP_PG_API_DSN" "$@"; }
