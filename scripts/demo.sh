#!/usr/bin/env bash
# The demo, README command 1: set everything up, get a model (trained on ELPV if none is
# present), build a recorded line from the ELPV test cells, start Mosquitto on loopback,
# replay the recording through the daemon while `inspector watch` prints the events, and
# end with the acceptance report (reports/demo/report.html and report.json).
#
# DEMO_QUICK=1 makes it small (a few cells, a one-epoch model): what CI runs.
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
step "setup (scripts/setup.sh dev,train)"
scripts/setup.sh dev,train
inspector=.venv/bin/inspector

workdir="$(mktemp -d)"
cleanup() {
    [ -n "${watch_pid:-}" ] && kill "$watch_pid" 2>/dev/null || true
    [ -n "${broker_pid:-}" ] && kill "$broker_pid" 2>/dev/null || true
    rm -rf "$workdir"
}
trap cleanup EXIT

if [ "${DEMO_QUICK:-0}" = 1 ]; then
    model=engines/elpv-tiny.onnx recording=recordings/elpv-line-small.mp4
    train_args=(--image-size 96 --epochs 1 --warmup-epochs 0 --limit 48)
    recording_args=(--limit 40)
elif [ -f engines/elpv-lite0.onnx ]; then
    model=engines/elpv-lite0.onnx recording=recordings/elpv-line.mp4
else
    # The full model (benchmarks/train_elpv.sh, ~45 min here) is used when present; the
    # demo itself trains a smaller, quicker one.
    model=engines/elpv-quick.onnx recording=recordings/elpv-line.mp4
    train_args=(--image-size 128 --epochs 3 --patience 3)
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
"$inspector" watch --port "$port" 'line/+/defects' &
watch_pid=$!
sleep 0.5

step "inspector replay $recording (model $model)"
status=0
"$inspector" replay "$recording" --config config.toml --report reports/demo || status=$?
step ""
echo "==> report: reports/demo/report.html (and report.json); the demo took $SECONDS s"
exit "$status"
