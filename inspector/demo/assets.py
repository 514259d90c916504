"""Build the demo's model and recording: ``python -m inspector.demo.assets [ROOT]``.

Until a trained model exists (``inspector train``), the demo runs the
rule-based colour model of inspector.demo.models: a real ONNX graph that ONNX
Runtime executes through the same code path as a trained CNN.
"""

from __future__ import annotations

import sys
from pathlib import Path

from inspector.demo.models import build_color_model
from inspector.demo.recording import write_conveyor_recording


def build_demo_assets(root: Path) -> tuple[Path, Path]:
    model = root / "engines" / "demo-color.onnx"
    video = root / "recordings" / "demo.mp4"
    model.parent.mkdir(parents=True, exist_ok=True)
    if not model.exists():
        build_color_model(model)
    if not video.exists():
        write_conveyor_recording(video)
    return model, video


if __name__ == "__main__":
    model_path, video_path = build_demo_assets(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
    print(f"model: {model_path}\nrecording: {video_path}")
