#!/usr/bin/env bash
# The demo tenant for one machine: `demo` ("Demo salon") with all five channels.
#
#   deploy/demo.sh [BUILD_DIR]     seed (or re-seed: idempotent), then print a signed curl
#   deploy/demo.sh --curl          only print a freshly signed curl for the generic channel
#
# Called by `deploy/dev.sh up` once imperium-control runs. Reads .dev/env (IMP_KAFKA_BROKERS,
# IMP_PG_APP_DSN, IMP_SECRET_KEY, IMP_INGRESS_URL) and .dev/user.env; the build directory is
# $1, else $BUILD, else build/dev. Secrets are random, made once and kept in .dev/demo.secrets,
# so a second run changes nothing. Appends to .dev/env: IMP_DEMO_TENANT and
# IMP_DEMO_SECRET_{GENERIC,CHATFLOW,WHATSAPP,TELEGRAM} (+ IMP_DEMO_WHATSAPP_VERIFY_TOKEN).
# Outbound API URLs come from IMP_CHATFLOW_API_URL, IMP_WHATSAPP_API_URL and
# IMP_TELEGRAM_API_URL when set; the generic channel's callback from IMP_DEMO_CALLBACK_URL and
# the manager's Telegram chat from IMP_DEMO_MANAGER_CHAT_ID.
# IMP_DEMO_DIR replaces .dev (tests).
#
# The knowledge base (docs/knowledge-base-operations.md): the salon FAQ in deploy/demo/ is put
# as the tenant's sources, deploy/demo/kb_questions.json as its test questions, the
# promotion gate set to kb_min_hit_rate 0.9, then `kb build --if-changed`, `kb eval` and
# `kb promote`: the demo tenant ends with a stable version whose questions pass. Run again
# with the same files, nothing new is built (the version built from them is reused). This
# needs imperium-indexer: IMP_DEMO_KB=1 seeds it, 0 skips it, auto (the default) seeds it when
# deploy/dev.sh runs an indexer ($DEV/run/imperium-indexer.pid).
#
# The bot (docs/bot-versions.md): a stable bot version carrying the instruction of
# deploy/demo/bot_instruction.txt and the QC rules of deploy/demo/bot_settings.json (what the
# demo answered with before it had bot versions: the default instruction and rules), drafted
# with `bot draft --if-changed` and published with `bot publish --stable`; run again with the
# same files, nothing changes. IMP_DEMO_BOT=1 seeds it, 0 skips it, auto (the default) seeds it
# with the knowledge base.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEV=${IMP_DEMO_DIR:-$ROOT/.dev}
SLUG=demo
NAME="Demo salon"

say() { printf 'demo: %s\n' "$*" >&2; }
die() {
    printf 'demo: error: %s\n' "$*" >&2
    exit 1
}

load_env() {
    [ -f "$DEV/env" ] || die "$DEV/env is missing: run deploy/dev.sh up"
    set -a
    # shellcheck disable=SC1091
    . "$DEV/env"
    # shellcheck disable=SC1091
    [ -f "$DEV/user.env" ] && . "$DEV/user.env"
    set +a
    : "${IMP_SECRET_KEY:?IMP_SECRET_KEY is not in $DEV/env}"
    : "${IMP_KAFKA_BROKERS:?IMP_KAFKA_BROKERS is not in $DEV/env}"
    IMP_PG_DSN=${IMP_PG_APP_DSN:-${IMP_PG_DSN:?IMP_PG_APP_DSN is not in $DEV/env}}
    export IMP_PG_DSN IMP_CONTROL_ACTOR=${IMP_CONTROL_ACTOR:-demo.sh}
    : "${IMP_INGRESS_URL:=http://127.0.0.1:8080}"
}

rand_b64() { openssl rand -base64 32; }
rand_hex() { openssl rand -hex "$1"; }
rand_urlsafe() { openssl rand -base64 32 | tr '+/' '-_' | tr -d '='; }

# Made once; kept (and reused) so that seeding again is a no-op.
ensure_secrets() {
    [ -s "$DEV/demo.secrets" ] && return 0
    (
        umask 077
        cat >"$DEV/demo.secrets.new" <<EOF
# Secrets of the demo tenant, made once by deploy/demo.sh. Delete the file to get new ones
# (then run deploy/demo.sh again: the channels are updated).
DEMO_GENERIC_WEBHOOK_SECRET=whsec_$(rand_b64)
DEMO_GENERIC_CALLBACK_SECRET=whsec_$(rand_b64)
DEMO_CHATFLOW_WEBHOOK_SECRET=whsec_$(rand_b64)
DEMO_CHATFLOW_API_TOKEN=cf_$(rand_hex 24)
DEMO_WHATSAPP_APP_SECRET=$(rand_hex 16)
DEMO_WHATSAPP_VERIFY_TOKEN=$(rand_urlsafe)
DEMO_WHATSAPP_ACCESS_TOKEN=EAA$(rand_hex 32)
DEMO_TELEGRAM_SECRET_TOKEN=$(rand_urlsafe)
DEMO_TELEGRAM_BOT_TOKEN=$((RANDOM * 32768 + RANDOM + 100000)):$(rand_urlsafe)
DEMO_TEST_WEBHOOK_SECRET=whsec_$(rand_b64)
EOF
        mv "$DEV/demo.secrets.new" "$DEV/demo.secrets"
    )
    say "made new secrets in $DEV/demo.secrets"
}

# Secret values go to the client in files (--secret NAME=@FILE), never on a command line.
SECRET_DIR=
secret_arg() { # secret_arg NAME VALUE: prints the --secret argument
    local f
    f=$(mktemp "$SECRET_DIR/s.XXXXXX")
    printf '%s' "$2" >"$f"
    printf -- '--secret=%s=@%s' "$1" "$f"
}

control() {
    local out rc=0
    out=$("$CONTROL" "$@" --timeout 60s) || rc=$?
    printf '%s\n' "$out" | grep -v '^secret ' >&2 || true
    [ "$rc" = 0 ] || die "imperium-control $1 $2 $3 failed (exit $rc)"
}

seed() {
    # shellcheck disable=SC1091
    . "$DEV/demo.secrets"
    SECRET_DIR=$(mktemp -d)
    trap 'rm -rf "$SECRET_DIR"' EXIT
    local url=()
    control tenant create "$SLUG" --name "$NAME"
    control channel set "$SLUG" generic ${IMP_DEMO_CALLBACK_URL:+--callback-url "$IMP_DEMO_CALLBACK_URL"} \
        "$(secret_arg webhook_secret "$DEMO_GENERIC_WEBHOOK_SECRET")" \
        "$(secret_arg callback_secret "$DEMO_GENERIC_CALLBACK_SECRET")"
    url=(${IMP_CHATFLOW_API_URL:+--api-url "$IMP_CHATFLOW_API_URL"})
    control channel set "$SLUG" chatflow "${url[@]}" \
        "$(secret_arg webhook_secret "$DEMO_CHATFLOW_WEBHOOK_SECRET")" \
        "$(secret_arg api_token "$DEMO_CHATFLOW_API_TOKEN")"
    url=(${IMP_WHATSAPP_API_URL:+--api-url "$IMP_WHATSAPP_API_URL"})
    control channel set "$SLUG" whatsapp "${url[@]}" --phone-number-id 100000000000001 \
        "$(secret_arg app_secret "$DEMO_WHATSAPP_APP_SECRET")" \
        "$(secret_arg verify_token "$DEMO_WHATSAPP_VERIFY_TOKEN")" \
        "$(secret_arg access_token "$DEMO_WHATSAPP_ACCESS_TOKEN")"
    url=(${IMP_TELEGRAM_API_URL:+--api-url "$IMP_TELEGRAM_API_URL"})
    control channel set "$SLUG" telegram "${url[@]}" \
        ${IMP_DEMO_MANAGER_CHAT_ID:+--manager-chat-id "$IMP_DEMO_MANAGER_CHAT_ID"} \
        "$(secret_arg secret_token "$DEMO_TELEGRAM_SECRET_TOKEN")" \
        "$(secret_arg bot_token "$DEMO_TELEGRAM_BOT_TOKEN")"
    control channel set "$SLUG" test "$(secret_arg webhook_secret "$DEMO_TEST_WEBHOOK_SECRET")"
}

# ---- the knowledge base --------------------------------------------------------------------

KB_SOURCES=(faq_ru.md faq_en.md faq_kk.csv faq_qa.json)
KB_MIN_HIT_RATE=0.9

indexer_running() {
    local pid
    pid=$(cat "$DEV/run/imperium-indexer.pid" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

kb_wanted() {
    case "${IMP_DEMO_KB:-auto}" in
    1 | yes | on) return 0 ;;
    0 | no | off) return 1 ;;
    esac
    indexer_running && return 0
    say "imperium-indexer is not running: the demo knowledge base is not seeded (IMP_DEMO_KB=1 forces it)"
    return 1
}

# kb ARGS…: the client's kb command; its output on stderr, and in $KB_OUT.
kb() {
    local rc=0
    KB_OUT=$("$CONTROL" kb "$@" --timeout 300s) || rc=$?
    printf '%s\n' "$KB_OUT" >&2
    [ "$rc" = 0 ] || die "imperium-control kb $1 $2 $3 failed (exit $rc)"
}

seed_kb() {
    local dir="$ROOT/deploy/demo" f version
    for f in "${KB_SOURCES[@]}"; do
        kb source put "$SLUG" "$f" --file "$dir/$f"
    done
    kb questions set "$SLUG" --file "$dir/kb_questions.json"
    kb settings "$SLUG" --min-hit-rate "$KB_MIN_HIT_RATE"
    kb build "$SLUG" --if-changed
    version=$(printf '%s\n' "$KB_OUT" | sed -n 's/^version //p')
    [ -n "$version" ] || die "kb build printed no version"
    kb eval "$SLUG" "$version"
    kb promote "$SLUG" "$version"
    say "knowledge base of $SLUG: version $version is stable"
}

# ---- the bot ------------------------------------------------------------------------------

bot_wanted() {
    case "${IMP_DEMO_BOT:-auto}" in
    1 | yes | on) return 0 ;;
    0 | no | off) return 1 ;;
    esac
    [ "$1" = 1 ]
}

# bot ARGS…: the client's bot command; its output on stderr, and in $BOT_OUT.
bot() {
    local rc=0
    BOT_OUT=$("$CONTROL" bot "$@" --timeout 60s) || rc=$?
    printf '%s\n' "$BOT_OUT" >&2
    [ "$rc" = 0 ] || die "imperium-control bot $1 $2 $3 failed (exit $rc)"
}

seed_bot() {
    local dir="$ROOT/deploy/demo" version
    bot draft "$SLUG" --if-changed --instruction "@$dir/bot_instruction.txt" \
        --settings "@$dir/bot_settings.json"
    version=$(printf '%s\n' "$BOT_OUT" | sed -n 's/^version //p')
    [ -n "$version" ] || die "bot draft printed no version"
    bot publish "$SLUG" "$version" --stable
    say "bot of $SLUG: version $version is stable"
}

# Replace this script's lines in .dev/env (so running it twice leaves them once).
write_env() {
    # shellcheck disable=SC1091
    . "$DEV/demo.secrets"
    local tmp
    tmp=$(mktemp "$DEV/env.XXXXXX")
    chmod 600 "$tmp"
    grep -v '^IMP_DEMO_' "$DEV/env" >"$tmp" || true
    grep -q '^IMP_INGRESS_URL=' "$tmp" || echo "IMP_INGRESS_URL=$IMP_INGRESS_URL" >>"$tmp"
    cat >>"$tmp" <<EOF
IMP_DEMO_TENANT=$SLUG
IMP_DEMO_SECRET_GENERIC=$DEMO_GENERIC_WEBHOOK_SECRET
IMP_DEMO_SECRET_CHATFLOW=$DEMO_CHATFLOW_WEBHOOK_SECRET
IMP_DEMO_SECRET_WHATSAPP=$DEMO_WHATSAPP_APP_SECRET
IMP_DEMO_WHATSAPP_VERIFY_TOKEN=$DEMO_WHATSAPP_VERIFY_TOKEN
IMP_DEMO_SECRET_TELEGRAM=$DEMO_TELEGRAM_SECRET_TOKEN
EOF
    mv "$tmp" "$DEV/env"
}

# Standard Webhooks: v1,base64(HMAC-SHA256(base64decode(secret after whsec_), id.ts.body)).
sign() { # sign SECRET ID TS BODY
    local key
    key=$(printf '%s' "${1#whsec_}" | openssl base64 -d -A | od -An -tx1 | tr -d ' \n')
    printf '%s' "$2.$3.$4" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" -binary |
        openssl base64 -A
}

print_curl() {
    # shellcheck disable=SC1091
    . "$DEV/demo.secrets"
    local id ts body sig
    id="msg_$(rand_hex 12)"
    ts=$(date +%s)
    body='{"conversation":"demo-customer-1","sender":{"id":"customer-1","name":"Ann"},"message":{"id":"'"$id"'","text":"Hello! When are you open on Saturday?"}}'
    sig=$(sign "$DEMO_GENERIC_WEBHOOK_SECRET" "$id" "$ts" "$body")
    cat <<EOF

A signed webhook for the demo tenant's generic channel (valid for 5 minutes; a fresh one:
deploy/demo.sh --curl):

curl -sS -i -X POST '$IMP_INGRESS_URL/v1/webhooks/generic/$SLUG' \\
  -H 'content-type: application/json' \\
  -H 'webhook-id: $id' \\
  -H 'webhook-timestamp: $ts' \\
  -H 'webhook-signature: v1,$sig' \\
  --data-raw '$body'
EOF
}

main() {
    case "${1:-}" in
    --curl)
        load_env
        [ -s "$DEV/demo.secrets" ] || die "no demo secrets yet: run deploy/demo.sh first"
        print_curl
        return
        ;;
    -h | --help)
        sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'
        return
        ;;
    esac
    local build=${1:-${BUILD:-$ROOT/build/dev}}
    CONTROL="$build/bin/imperium-control"
    [ -x "$CONTROL" ] || die "$CONTROL is not built"
    load_env
    ensure_secrets
    seed
    local kb=0
    if kb_wanted; then
        seed_kb
        kb=1
    fi
    if bot_wanted "$kb"; then seed_bot; fi
    write_env
    say "tenant $SLUG is ready with chatflow, whatsapp, telegram, generic and test channels"
    print_curl
}

main "$@"
