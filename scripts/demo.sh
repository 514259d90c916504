#!/usr/bin/env bash
# The demo: set up, build a model and a recorded line, start a broker on loopback,
# replay the recording through the daemon while `inspector watch` prints the events,
# and end with the run's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev

workdir="$(mktemp -d)"
cleanup() {
    [ -n "${watch_pid:-}" ] && kill "$watch_pid" 2>/dev/null || true
    [ -n "${broker_pid:-}" ] && kill "$broker_pid" 2>/dev/null || true
    rm -rf "$workdir"
}
trap cleanup EXIT

echo "==> building the demo model and recording"
.venv/bin/python -m inspector.demo.assets .

port="$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" >"$workdir/mosquitto.conf"
mosquitto_bin="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
"$mosquitto_bin" -c "$workdir/mosquitto.conf" >"$workdir/mosquitto.log" 2>&1 &
broker_pid=$!
for _ in $(seq 50); do
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
echo "==> mosquitto on 127.0.0.1:$port"

export INSPECTOR__MQTT__PORT="$port"
.venv/bin/inspector watch --port "$port" 'line/+/defects' &
watch_pid=$!
sleep 0.5

echo "==> inspector run --config config.toml (replaying recordings/demo.mp4)"
mkdir -p reports
.venv/bin/inspector run --config config.toml --json >reports/demo-summary.json
sleep 0.5
echo "==> summary (reports/demo-summary.json)"
.venv/bin/python -m json.tool reports/demo-summary.json
