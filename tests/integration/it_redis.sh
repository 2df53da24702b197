# The redis module against real servers (tests/integration/progs/redis_check.c): commands
# and helpers with exact counts on the harness's Redis; password, command timeout and two
# outages (SHUTDOWN NOSAVE, then SIGKILL) on a private Redis that the program stops and
# restarts through a small control script.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/lib/common.sh"

PRIVATE_PORT=$(free_port)
PRIVATE_PASSWORD=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
PRIVATE_DIR="$IMP_TEST_TMP/redis-private"
CTL="$IMP_TEST_TMP/redis-private.sh"
mkdir -p "$PRIVATE_DIR"

# The control script: start | stop | kill. Started servers are registered with the harness
# (start_bg), so teardown stops whatever is left running.
cat >"$CTL" <<CTL_EOF
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/lib/common.sh"
port=$PRIVATE_PORT
cli() { redis-cli -h 127.0.0.1 -p \$port -a "$PRIVATE_PASSWORD" --no-auth-warning "\$@"; }
up() { [ "\$(cli ping 2>/dev/null)" = PONG ]; }
down() { ! port_open \$port; }
case "\$1" in
start)
    start_bg redis-private redis-server --port \$port --bind 127.0.0.1 \\
        --requirepass "$PRIVATE_PASSWORD" --save "" --appendonly no \\
        --dir "$PRIVATE_DIR" --daemonize no --logfile ""
    echo "\$BG_PID" >"$PRIVATE_DIR/pid"
    wait_for 10 "private redis on \$port" up ;;
stop)
    cli shutdown nosave >/dev/null 2>&1 || true
    wait_for 10 "private redis to stop" down ;;
kill)
    signal_proc KILL "\$(cat "$PRIVATE_DIR/pid")"
    wait_for 10 "private redis to die" down ;;
*)
    die "unknown command: \$1" ;;
esac
CTL_EOF

bash "$CTL" start
export IMP_TEST_REDIS_PRIVATE_URL="redis://:$PRIVATE_PASSWORD@127.0.0.1:$PRIVATE_PORT/0"
export IMP_TEST_REDIS_CTL="bash $CTL"

start=$(now_ms)
CK_VERBOSITY=normal "$IMP_BUILD_DIR/bin/redis_check"
say "redis_check passed in $(($(now_ms) - start)) ms"
