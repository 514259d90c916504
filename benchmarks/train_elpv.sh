#!/usr/bin/env bash
# Rebuild engines/elpv-lite0 (the model config.toml runs) with the defaults of
# `inspector train` (LP-FT, 25-minute budget), then evaluate the exported model.
# benchmarks/train_lpft.sh measures elpv and elpv4 for the README's table.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev,train
.venv/bin/inspector train elpv --out engines/elpv-lite0 "$@"
.venv/bin/inspector evaluate engines/elpv-lite0.onnx elpv
