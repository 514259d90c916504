#!/usr/bin/env bash
# The speed benchmark (issue 5): `inspector bench` on the demo line, FP32 and INT8, with a
# real broker on loopback. Needs engines/elpv-lite0.onnx (benchmarks/train_elpv.sh) and
# writes engines/elpv-lite0-int8.onnx (inspector calibrate int8) when it is missing.
# Twice: with ONNX Runtime on every core (model.threads = 0, the default) and on one core
# (model.threads = 1), which leaves the other core to decoding, corrections and tiling.
# Usage: benchmarks/bench.sh [SECONDS] [ROUNDS]
# results: reports/bench.json (all cores), reports/bench-1thread.json (one engine thread)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-8}" rounds="${2:-3}"
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
for threads in 0 1; do
    out=reports/bench.json
    [ "$threads" = 0 ] || out="reports/bench-${threads}thread.json"
    INSPECTOR__MQTT__PORT="$broker_port" INSPECTOR__MODEL__PATH="$PWD/$model" INSPECTOR__CAMERAS="$cameras" \
    INSPECTOR__MODEL__THREADS="$threads" \
        "$inspector" bench --config config.toml --int8 "$int8" --seconds "$seconds" --rounds "$rounds" \
        --json >"$out"
    .venv/bin/python - "$out" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{sys.argv[1]}: threads {r['threads']}, medians of {r['rounds']} rounds")
for key in ("engine_tiles_per_s", "pipeline_tiles_per_s", "pipeline_vs_engine", "naive_tiles_per_s",
            "pipeline_uncorrected_tiles_per_s", "correction_cost", "int8_engine_tiles_per_s",
            "int8_pipeline_tiles_per_s", "int8_pipeline_vs_engine", "int8_vs_fp32"):
    print(f"  {key:34} {r.get(key)}")
PY
done
