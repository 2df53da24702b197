#!/usr/bin/env bash
# Installs the Debian packages Imperium needs to build, test and run. Idempotent: when
# everything is present it only checks and returns. Needs root (or sudo) to install.
set -euo pipefail

PACKAGES=(
    build-essential cmake pkg-config git ca-certificates curl
    librdkafka-dev libpq-dev libhiredis-dev libjansson-dev libcurl4-openssl-dev libssl-dev
    libh2o-evloop-dev libh2o-dev check libsubunit-dev
    postgresql postgresql-contrib redis-server
    python3 python3-jsonschema wrk kcat clang libclang-rt-14-dev gdb procps
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "bootstrap: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "bootstrap: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian package starts a system-wide cluster and redis; the fleet runs its own in .dev/.
