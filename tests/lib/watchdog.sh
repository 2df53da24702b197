# shellcheck shell=bash
# Run by tests/harness.sh in its own session: bash watchdog.sh HARNESS_PID TMPDIR.
# When the harness dies without tearing down (SIGKILL, e.g. a ctest timeout), stop what it
# started and remove its temporary directory. The harness kills this watchdog when it tears
# down normally.
harness=$1
tmp=$2
while kill -0 "$harness" 2>/dev/null; do sleep 1; done
[ -d "$tmp" ] && [ ! -e "$tmp/.torn-down" ] || exit 0
export IMP_TEST_TMP=$tmp IMP_LOG_TAG=watchdog
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"
IMP_PG_DATA="$tmp/pg/data"
say "harness $harness is gone; cleaning up $tmp"
kill_registered 5 postgres redis devbroker
pg_stop 10
kill_registered 5
release_ports
[ "${IMP_KEEP_TMP:-0}" = 1 ] || rm -rf "$tmp"
