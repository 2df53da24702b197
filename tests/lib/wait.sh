# shellcheck shell=bash
# Bounded waits. Each returns 0 when the condition holds, or prints what it waited for and
# returns 1 after the timeout (whole seconds).

# wait_for TIMEOUT WHAT CMD…: run CMD every 0.1 s (WAIT_FOR_EVERY seconds when set) until it
# succeeds. The clock is read without a process (clock_ms), so that a long wait costs the
# machine only CMD and sleep.
wait_for() {
    local timeout=$1 what=$2 now
    shift 2
    clock_ms now
    local deadline=$((now + ${timeout%.*} * 1000))
    until "$@" >/dev/null 2>&1; do
        clock_ms now
        if [ "$now" -ge "$deadline" ]; then
            say "timed out after ${timeout}s waiting for $what"
            return 1
        fi
        sleep "${WAIT_FOR_EVERY:-0.1}"
    done
}

port_open() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

# wait_for_port PORT [TIMEOUT=30] [HOST=127.0.0.1]: something accepts connections.
wait_for_port() {
    wait_for "${2:-30}" "port ${3:-127.0.0.1}:$1" port_open "$1" "${3:-127.0.0.1}"
}

# wait_for_file PATH [TIMEOUT=30]: the file exists and is not empty.
wait_for_file() {
    wait_for "${2:-30}" "file $1" test -s "$1"
}
