#!/usr/bin/env bash
# The training benchmark (issue 19): `inspector train` with its defaults on ELPV binary
# (Deitsch et al. 2019 split) and on elpv4 (four classes), one after the other (elpv4 reuses
# the cached features of the same images), then one summary line per run: test accuracy of
# the exported model, probe-only vs fine-tuned, per-class recall, wall time.
# Usage: benchmarks/train_lpft.sh [extra inspector-train options]   (run on a quiet machine)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev,train
for data in elpv elpv4; do
    /usr/bin/time -f "$data: wall %e s" .venv/bin/inspector train "$data" \
        --out "engines/$data-lite0" "$@"
done
for data in elpv elpv4; do
    .venv/bin/python - "engines/$data-lite0-report/metrics.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
recall = {k: v["recall"] for k, v in m["test"]["per_class"].items()}
print(f"{m['dataset']}: test {m['test']['accuracy']:.4f} ({m['chosen']} chosen); "
      f"probe test {m['probe']['test_accuracy']}, fine-tuned test "
      f"{(m['finetune'] or {}).get('test_accuracy')}; recall {recall}; "
      f"probe stage {m['probe']['seconds']:.0f} s, wall {m['wall_seconds'] / 60:.1f} min")
PY
done
