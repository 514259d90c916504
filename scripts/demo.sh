#!/usr/bin/env bash
# The demo, README command 1: set everything up, get a model (trained on ELPV if none is
# present), build a recorded line from the ELPV test cells, start Mosquitto on loopback,
# replay the recording through the daemon while `inspector watch` prints the events, and
# end with the acceptance report (reports/demo/report.html and report.json).
#
# DEMO_QUICK=1 makes it small (a few cells, a one-epoch model): what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev,train
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
    echo "==> training ${model%.onnx} on ELPV (no model yet; $model)"
    "$inspector" train elpv --out "${model%.onnx}" "${train_args[@]}"
fi
if [ ! -f "$recording" ] || [ ! -f "$recording.truth.jsonl" ]; then
    echo "==> building $recording from the ELPV test cells"
    "$inspector" make-recording elpv --out "$recording" "${recording_args[@]}"
fi

source scripts/lib/broker.sh
start_broker "$workdir"
port="$broker_port"
echo "==> mosquitto on 127.0.0.1:$port"

export INSPECTOR__MQTT__PORT="$port" INSPECTOR__MODEL__PATH="$PWD/$model"
"$inspector" watch --port "$port" 'line/+/defects' &
watch_pid=$!
sleep 0.5

echo "==> inspector replay $recording (model $model)"
status=0
"$inspector" replay "$recording" --config config.toml --report reports/demo || status=$?
echo "==> report: reports/demo/report.html (and report.json)"
exit "$status"
