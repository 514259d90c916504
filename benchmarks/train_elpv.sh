#!/usr/bin/env bash
# The transfer-learning benchmark (issue 3): fine-tune EfficientNet-Lite0 on ELPV (binary,
# Deitsch et al. 2019 split), export, and evaluate the exported model with ONNX Runtime.
# Usage: benchmarks/train_elpv.sh [IMAGE_SIZE] [EPOCHS]     (defaults 160, 12)
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-160}"
epochs="${2:-12}"
scripts/setup.sh dev,train
.venv/bin/inspector train elpv --out engines/elpv-lite0 --image-size "$size" --epochs "$epochs"
.venv/bin/inspector evaluate engines/elpv-lite0.onnx elpv
