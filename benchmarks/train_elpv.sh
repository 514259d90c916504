#!/usr/bin/env bash
# The transfer-learning benchmark (issue 3): fine-tune EfficientNet-Lite0 on ELPV (binary,
# Deitsch et al. 2019 split), export, and evaluate the exported model with ONNX Runtime.
# Usage: benchmarks/train_elpv.sh [IMAGE_SIZE] [EPOCHS] [LR]   (defaults: inspector train's)
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
[ -n "${1:-}" ] && args+=(--image-size "$1")
[ -n "${2:-}" ] && args+=(--epochs "$2")
[ -n "${3:-}" ] && args+=(--lr "$3")
scripts/setup.sh dev,train
.venv/bin/inspector train elpv --out engines/elpv-lite0 "${args[@]}"
.venv/bin/inspector evaluate engines/elpv-lite0.onnx elpv
