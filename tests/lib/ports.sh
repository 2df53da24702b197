# shellcheck shell=bash
# Free TCP ports on loopback, safe with several harnesses running at once.
#
# A port is taken from 20000-31999 (below Linux's ephemeral range, so outgoing connections
# never hold it), must show no socket in `ss`, and is reserved by creating a directory under
# $IMP_PORT_DIR (mkdir is atomic) that records the owning harness. Reservations are released
# at teardown; ones whose owner died are reclaimed.

: "${IMP_PORT_DIR:=/tmp/imperium-ports}"

port_in_use() { # port_in_use PORT
    if command -v ss >/dev/null 2>&1; then
        [ -n "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}

# A reservation whose owner is gone (or that was never completed, an hour ago) is stale.
reclaim_port() { # reclaim_port PORT
    local dir="$IMP_PORT_DIR/$1" owner
    owner=$(cat "$dir/owner" 2>/dev/null || true)
    if [ -n "$owner" ]; then
        kill -0 "$owner" 2>/dev/null && return 1
    elif [ -z "$(find "$dir" -maxdepth 0 -mmin +60 2>/dev/null)" ]; then
        return 1
    fi
    rm -rf "$dir"
}

# free_port: print a reserved free port. The reservation lasts until the harness ends.
free_port() {
    mkdir -p "$IMP_PORT_DIR" 2>/dev/null
    chmod 1777 "$IMP_PORT_DIR" 2>/dev/null || true
    local owner=${IMP_HARNESS_PID:-$$} port tries=0
    while [ $((tries += 1)) -le 500 ]; do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
        port_in_use "$port" && continue
        if mkdir "$IMP_PORT_DIR/$port" 2>/dev/null; then
            echo "$owner" >"$IMP_PORT_DIR/$port/owner"
            [ -n "${IMP_TEST_TMP:-}" ] && echo "$port" >>"$IMP_TEST_TMP/.ports"
            echo "$port"
            return 0
        fi
        reclaim_port "$port" || true
    done
    die "no free port found after 500 tries"
}

# Release every reservation listed in $IMP_TEST_TMP/.ports.
release_ports() {
    [ -f "${IMP_TEST_TMP:-}/.ports" ] || return 0
    local port
    while read -r port; do
        [ -n "$port" ] && rm -rf "${IMP_PORT_DIR:?}/$port"
    done <"$IMP_TEST_TMP/.ports"
    : >"$IMP_TEST_TMP/.ports"
}
