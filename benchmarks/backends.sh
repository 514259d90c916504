#!/usr/bin/env bash
# The backends benchmark (issue 17): `inspector bench --backends onnxruntime,openvino` on the
# demo line, FP32 and INT8 (and OpenVINO bf16 where the CPU has bf16 units), interleaved
# rounds, with a real broker on loopback, then the latency at half load.
# Usage: benchmarks/backends.sh MODEL.onnx MODEL-int8.onnx RECORDING [SECONDS] [ROUNDS]
# (MODEL from benchmarks/train_elpv.sh or the demo, MODEL-int8 from `inspector calibrate int8`,
# RECORDING from `inspector make-recording elpv --cols 4`); writes reports/backends.json.
set -euo pipefail
cd "$(dirname "$0")/.."
model="$1" int8="$2" recording="$3" seconds="${4:-5}" rounds="${5:-3}"
scripts/setup.sh dev,train,openvino
workdir="$(mktemp -d)"
trap '[ -n "${broker_pid:-}" ] && kill "$broker_pid" 2>/dev/null; rm -rf "$workdir"' EXIT
source scripts/lib/broker.sh
start_broker "$workdir"
mkdir -p reports
INSPECTOR__MQTT__PORT="$broker_port" INSPECTOR__MODEL__PATH="$(realpath "$model")" \
INSPECTOR__CAMERAS='[{"id": "cam0", "source": "'"$(realpath "$recording")"'"}]' \
INSPECTOR__OUTBOX__PATH="$workdir/outbox.sqlite" \
    .venv/bin/inspector bench --config config.toml --backends onnxruntime,openvino \
    --int8 "$int8" --seconds "$seconds" --rounds "$rounds" --json >reports/backends.json
.venv/bin/python - <<'PY'
import json
r = json.load(open("reports/backends.json"))
print(f"medians of {r['rounds']} rounds, batch {r['batch']}, threads {r['threads']}")
for name, e in r["backends"].items():
    print(f"  {name:18} engine {e['engine_tiles_per_s']:7.1f}  pipeline {e['pipeline_tiles_per_s']:7.1f}"
          f"  pipeline/engine {e['pipeline_vs_engine']:.3f}  engine vs ORT FP32 {e['engine_vs_fp32']:.2f}x")
print("pipeline (configured backend) vs best bare engine:", r["pipeline_vs_best_engine"])
print("latency at half load:", r["latency"])
PY
