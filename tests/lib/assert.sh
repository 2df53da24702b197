# shellcheck shell=bash
# Assertions: on failure print "NAME: expected X, got Y" and exit 1 (the harness then dumps
# the service logs); on success print "ok NAME".

fail() {
    printf 'FAIL %s\n' "$*" >&2
    exit 1
}

pass() { printf 'ok %s\n' "$*" >&2; }

assert_eq() { # assert_eq NAME EXPECTED ACTUAL
    [ "$2" = "$3" ] || fail "$1: expected $2, got $3"
    pass "$1"
}

assert_ne() { # assert_ne NAME UNEXPECTED ACTUAL
    [ "$2" != "$3" ] || fail "$1: expected anything but $2"
    pass "$1"
}

assert_contains() { # assert_contains NAME HAYSTACK NEEDLE
    case "$2" in
    *"$3"*) pass "$1" ;;
    *) fail "$1: expected to contain \"$3\", got \"$2\"" ;;
    esac
}

# assert_fails NAME CMD…: CMD must exit non-zero; its output goes to $ASSERT_OUTPUT.
ASSERT_OUTPUT=
assert_fails() {
    local name=$1
    shift
    if ASSERT_OUTPUT=$("$@" 2>&1); then
        fail "$name: expected failure, got success: $ASSERT_OUTPUT"
    fi
    pass "$name"
}

# assert_ok NAME CMD…: CMD must exit 0; its output goes to $ASSERT_OUTPUT.
assert_ok() {
    local name=$1
    shift
    ASSERT_OUTPUT=$("$@" 2>&1) || fail "$name: exit $?: $ASSERT_OUTPUT"
    pass "$name"
}
