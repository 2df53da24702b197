# shellcheck shell=bash
# Background processes that the harness kills at teardown, whatever happens to the test.
#
#   start_bg NAME CMD…     run CMD in its own process group, output to
#                          $IMP_TEST_TMP/logs/NAME.log; its pid is in $BG_PID
#   stop_bg PID [TIMEOUT]  SIGTERM to its process group, SIGKILL after TIMEOUT s (default 10);
#                          returns the exit status when it was our child, else 0
#
# The registry is the file $IMP_TEST_TMP/.pids ("pid name" per line), so processes started
# by a test script, or by a script the test runs, are all known to the harness.

BG_PID=

start_bg() {
    local name=$1
    shift
    [ -n "${IMP_TEST_TMP:-}" ] || die "start_bg needs IMP_TEST_TMP (run under tests/harness.sh)"
    mkdir -p "$IMP_TEST_TMP/logs"
    setsid "$@" >>"$IMP_TEST_TMP/logs/$name.log" 2>&1 </dev/null &
    BG_PID=$!
    echo "$BG_PID $name" >>"$IMP_TEST_TMP/.pids"
}

proc_alive() { kill -0 "$1" 2>/dev/null; }

# True while PID runs: a process that exited and waits to be reaped (state Z, as a child of
# this shell is until it is waited for) does not.
proc_running() { # proc_running PID
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) && [ -n "$st" ] && [ "${st:0:1}" != Z ]
}

# Signal a process group when the pid leads one, else the process.
signal_proc() { # signal_proc SIGNAL PID
    kill -"$1" -- "-$2" 2>/dev/null || kill -"$1" "$2" 2>/dev/null || true
}

stop_bg() {
    local pid=$1 timeout=${2:-10} waited=0
    proc_alive "$pid" || { wait "$pid" 2>/dev/null; return $?; }
    signal_proc TERM "$pid"
    while proc_running "$pid" && [ "$waited" -lt $((timeout * 10)) ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    if proc_running "$pid"; then
        say "pid $pid did not stop within ${timeout}s; killing it"
        signal_proc KILL "$pid"
    fi
    wait "$pid" 2>/dev/null
}

# True while the process group PGID (a start_bg pid) has a member that is not a zombie:
# the leader may be gone while what it forked lives on.
group_alive() {
    ps -e -o pgid=,stat= 2>/dev/null | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { f = 1 } END { exit !f }'
}

# Teardown: every registered process group still alive gets SIGTERM (newest first), then
# whatever is alive after TIMEOUT seconds gets SIGKILL. Names listed in SKIP are left alone.
kill_registered() { # kill_registered TIMEOUT [SKIP…]
    local timeout=$1
    shift
    [ -f "${IMP_TEST_TMP:-}/.pids" ] || return 0
    local pids=() pid name skip s
    while read -r pid name; do
        skip=0
        for s in "$@"; do [ "$name" = "$s" ] && skip=1; done
        [ "$skip" = 0 ] && group_alive "$pid" && pids=("$pid" "${pids[@]}")
    done <"$IMP_TEST_TMP/.pids"
    [ "${#pids[@]}" -gt 0 ] || return 0
    for pid in "${pids[@]}"; do signal_proc TERM "$pid"; done
    local deadline=$(($(now_ms) + timeout * 1000)) alive
    while :; do
        alive=()
        for pid in "${pids[@]}"; do group_alive "$pid" && alive+=("$pid"); done
        [ "${#alive[@]}" -eq 0 ] && return 0
        [ "$(now_ms)" -ge "$deadline" ] && break
        sleep 0.1
    done
    for pid in "${alive[@]}"; do
        say "process group $pid ($(ps -o comm= -p "$pid" 2>/dev/null)) ignored SIGTERM; killing it"
        signal_proc KILL "$pid"
    done
}
