#!/usr/bin/env bash
# Make sure the binaries the event and cluster tests start (their own instances, on free
# loopback ports) are installed: Mosquitto (MQTT broker) and PostgreSQL (initdb, pg_ctl).
# Installs what is missing with apt when it can; starts no system service. Run by `make test`.
set -uo pipefail

have_mosquitto() { command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; }
have_postgres() {
    command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null 2>&1
}

missing=()
have_mosquitto || missing+=(mosquitto)
have_postgres || missing+=(postgresql)
if [ ${#missing[@]} -eq 0 ]; then
    echo "ensure-services: mosquitto and postgresql are installed"
    exit 0
fi
echo "ensure-services: installing ${missing[*]} with apt (the tests start their own instances; no service is started)"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
        echo "ensure-services: not root and no passwordless sudo; install ${missing[*]} yourself" \
             "(apt-get install -y ${missing[*]}); the MQTT/PostgreSQL tests skip without them (and fail on CI)" >&2
        exit 0
    fi
fi
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d 101 keeps apt from starting the packages' system services (the tests run their own)
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod +x "$policy" && made_policy=1
fi
status=0
$SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" || status=$?
[ "$made_policy" -eq 1 ] && $SUDO rm -f "$policy"
if [ "$status" -ne 0 ]; then
    echo "ensure-services: apt-get failed ($status); the MQTT/PostgreSQL tests skip without ${missing[*]} (and fail on CI)" >&2
fi
exit 0
