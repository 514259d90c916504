#!/usr/bin/env bash
# Set up and run every check CI runs: lint, types, the test suite (real broker, real models),
# and the demo in its small form. Arguments go to pytest (and then the demo is skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
SETUP_TEST_PACKAGES=1 scripts/setup.sh dev,train,genicam,pylon,openvino,ui,opcua
echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> mypy"
.venv/bin/mypy
echo "==> lint-imports (the layers and no cycles: pyproject.toml, docs/architecture.md)"
.venv/bin/lint-imports --no-cache
echo "==> pytest"
.venv/bin/pytest -q "$@"
if [ "$#" = 0 ]; then
    echo "==> the demo, small (DEMO_QUICK=1 scripts/demo.sh)"
    DEMO_QUICK=1 scripts/demo.sh
fi
