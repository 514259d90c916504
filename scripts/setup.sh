#!/usr/bin/env bash
# Set up a development/demo machine: Debian's mosquitto, a virtualenv, the package.
# Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh dev   or   scripts/setup.sh dev,train
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages the daemon, the demo and the tests use: the MQTT broker and its tools,
# openssl (TLS test certificates) and systemd-analyze (the unit file's verification).
missing=()
{ command -v mosquitto || [ -x /usr/sbin/mosquitto ]; } >/dev/null 2>&1 || missing+=(mosquitto)
command -v mosquitto_sub >/dev/null 2>&1 || missing+=(mosquitto-clients)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
# The tests' browser (scripts/test.sh sets SETUP_TEST_PACKAGES=1): the operator's page is
# tested in a real headless Chromium, driven through Debian's chromedriver.
if [ "${SETUP_TEST_PACKAGES:-0}" = 1 ]; then
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> installing Debian packages: ${missing[*]}"
    # apt's chatter (debconf notes) is shown only when the install fails.
    apt_log="$(mktemp)"
    if ! { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq "${missing[@]}"; } >"$apt_log" 2>&1; then
        cat "$apt_log" >&2
        echo "setup: could not install ${missing[*]} (see above)" >&2
        exit 1
    fi
    rm -f "$apt_log"
fi

if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv"
    python3 -m venv .venv
fi
echo "==> installing line-inspector[$extras] into .venv"
.venv/bin/python -m pip install -qq --upgrade pip
if [[ ",$extras," == *",train,"* ]] && ! .venv/bin/python -c "import torch" 2>/dev/null; then
    # Pin the CPU build this machine carries; an open range would pull a multi-GB CUDA build.
    # On a GPU training box, install the torch build you want first; this step then skips.
    echo "==> installing torch==2.13.0 (CPU)"
    .venv/bin/python -m pip install -qq "torch==2.13.0"
fi
.venv/bin/python -m pip install -qq -e ".[$extras]"
.venv/bin/python -m pip install -qq -e plugins/inspector-sparkplug
