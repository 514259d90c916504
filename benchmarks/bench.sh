#!/usr/bin/env bash
# The speed benchmark (issue 5): `inspector bench` on the demo line, FP32 and INT8, with a
# real broker on loopback. Needs engines/elpv-lite0.onnx (benchmarks/train_elpv.sh) and
# writes engines/elpv-lite0-int8.onnx (inspector calibrate int8) when it is missing.
# Usage: benchmarks/bench.sh [SECONDS]    results: reports/bench.json
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
scripts/setup.sh dev,train
inspector=.venv/bin/inspector
model=engines/elpv-lite0.onnx int8=engines/elpv-lite0-int8.onnx recording=recordings/elpv-line.mp4
[ -f "$model" ] || { echo "no $model: run benchmarks/train_elpv.sh first" >&2; exit 66; }
[ -f "$int8" ] || "$inspector" calibrate int8 "$model" --dataset elpv
[ -f "$recording" ] || "$inspector" make-recording elpv --out "$recording" --cols 4
# Synthetic lens and flat-field files for the recording: what the corrections cost.
.venv/bin/python benchmarks/demo_calibration.py "$recording" calibration/demo/cam0

workdir="$(mktemp -d)"
trap '[ -n "${broker_pid:-}" ] && kill "$broker_pid" 2>/dev/null; rm -rf "$workdir"' EXIT
source scripts/lib/broker.sh
start_broker "$workdir"

mkdir -p reports
cameras='[{"id": "cam0", "source": "'"$PWD/$recording"'", "calibration": "'"$PWD"'/calibration/demo/cam0.toml", "flat_field": "'"$PWD"'/calibration/demo/cam0-flat.npz"}]'
INSPECTOR__MQTT__PORT="$broker_port" INSPECTOR__MODEL__PATH="$PWD/$model" INSPECTOR__CAMERAS="$cameras" \
    "$inspector" bench --config config.toml --int8 "$int8" --seconds "$seconds" --json >reports/bench.json
.venv/bin/python -m json.tool reports/bench.json
