#!/usr/bin/env bash
# Set up and run every check CI runs: lint, types, the test suite (real broker, real models).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev,train
echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> mypy"
.venv/bin/mypy
echo "==> pytest"
.venv/bin/pytest -q "$@"
