# shellcheck shell=bash
# The devbroker's control channel (line protocol on 127.0.0.1).
#
#   devbroker_cmd LINE [HOST:PORT]   send one command, print the one-line reply; the address
#                                    defaults to $IMP_DEVBROKER_CONTROL. Fails when nothing
#                                    answers within 10 s.

devbroker_cmd() {
    local addr=${2:-${IMP_DEVBROKER_CONTROL:-}} fd line rc
    [ -n "$addr" ] || die "devbroker_cmd: no address (IMP_DEVBROKER_CONTROL is not set)"
    exec {fd}<>"/dev/tcp/${addr%:*}/${addr##*:}" || return 1
    printf '%s\n' "$1" >&"$fd"
    IFS= read -r -t 10 line <&"$fd"
    rc=$?
    exec {fd}>&-
    [ "$rc" = 0 ] || return 1
    printf '%s\n' "${line%$'\r'}"
}
