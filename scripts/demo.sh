#!/usr/bin/env bash
# The demo, README command 1: set everything up, get a model (trained on ELPV if none is
# present), build a recorded line from the ELPV test cells, start Mosquitto on loopback,
# replay the recording through the daemon while `inspector watch` prints the events, and
# end with the acceptance report (reports/demo/report.html and report.json). The operator's
# page shows the replay live, and the demo ends by serving the line on it (the recording
# looping at its own pace) until Ctrl-C.
#
# DEMO_QUICK=1 makes it small (a few cells, a one-epoch model, no serving at the end): what
# CI runs. Without a terminal it does not serve at the end either.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says how long it took, and the end the total: the README's timings are these.
step_name="" step_started=0
step() {
    [ -n "$step_name" ] && echo "    ($step_name: $((SECONDS - step_started)) s)"
    step_name="${1%% *}" step_started=$SECONDS
    [ -n "$1" ] && echo "==> $1"
    return 0
}
step "setup (scripts/setup.sh dev,train,ui)"
scripts/setup.sh dev,train,ui
inspector=.venv/bin/inspector

workdir="$(mktemp -d)"
cleanup() {
    [ -n "${watch_pid:-}" ] && kill "$watch_pid" 2>/dev/null || true
    [ -n "${broker_pid:-}" ] && kill "$broker_pid" 2>/dev/null || true
    rm -rf "$workdir"
}
trap cleanup EXIT

# The model is trained only when missing. The demo's is the probe alone (no fine-tuning,
# no augmented views: deterministic, a few minutes here), written where config.toml's
# [model] path expects it, so `inspector run --config config.toml` works right after.
# benchmarks/train_lpft.sh trains the full model (probe + fine-tuning) in its place.
if [ "${DEMO_QUICK:-0}" = 1 ]; then
    model=engines/elpv-tiny.onnx recording=recordings/elpv-line-small.mp4
    train_args=(--image-size 96 --epochs 0 --views 0 --limit 48 --threads 2 --budget-min 5)
    recording_args=(--limit 40)
else
    model=engines/elpv-lite0.onnx recording=recordings/elpv-line.mp4
    train_args=(--image-size 224 --epochs 0 --views 0 --threads 2 --budget-min 10)
fi
recording_args+=(--cols 4)

if [ ! -f "$model" ]; then
    step "training ${model%.onnx} on ELPV (no model yet; $model)"
    "$inspector" train elpv --out "${model%.onnx}" "${train_args[@]}"
fi
if [ ! -f "$recording" ] || [ ! -f "$recording.truth.jsonl" ]; then
    step "building $recording from the ELPV test cells"
    "$inspector" make-recording elpv --out "$recording" "${recording_args[@]}"
fi

source scripts/lib/broker.sh
start_broker "$workdir"
port="$broker_port"
echo "    mosquitto on 127.0.0.1:$port"

export INSPECTOR__MQTT__PORT="$port" INSPECTOR__MODEL__PATH="$PWD/$model"
# The operator's page on 8080, or on a free port when 8080 is taken.
ui_port="$(.venv/bin/python -c 'import socket
s = socket.socket()
try:
    s.bind(("127.0.0.1", 8080))
except OSError:
    s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')"
export INSPECTOR__UI__ENABLED=true INSPECTOR__UI__PORT="$ui_port"
echo "    the operator's page: http://127.0.0.1:$ui_port/ (while the replay runs)"
"$inspector" watch --port "$port" 'line/+/defects' &
watch_pid=$!
sleep 0.5

step "replay of $recording by inspector replay (model $model)"
status=0
"$inspector" replay "$recording" --config config.toml --report reports/demo || status=$?
step ""
echo "==> report: reports/demo/report.html (and report.json); the demo took $SECONDS s"

if [ "${DEMO_QUICK:-0}" != 1 ] && [ -t 0 ] && [ -t 1 ]; then
    kill "$watch_pid" 2>/dev/null || true
    watch_pid=""
    # The same line, its recording looping at its own frame rate, with evidence pictures for
    # the page's defect list; its files (outbox, evidence) stay in the temporary folder.
    sed -e "s|^source = .*|source = \"$PWD/$recording\"\nrealtime = true\nloop = true|" \
        config.toml >"$workdir/line.toml"
    printf '\n[evidence]\nenabled = true\n' >>"$workdir/line.toml"
    echo
    echo "==> the operator's page: http://127.0.0.1:$ui_port/"
    echo "    serving the demo line (the recording in a loop, at its own pace); Ctrl-C to stop"
    INSPECTOR__LOGGING__LEVEL=warning "$inspector" run --config "$workdir/line.toml" || true
fi
exit "$status"
