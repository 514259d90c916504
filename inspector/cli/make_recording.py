"""``inspector make-recording DATA``: a recorded conveyor line, with truth, from labelled images."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inspector.cli.arguments import positive_float, positive_int
from inspector.cli.output import print_summary


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "make-recording",
        help="build a recorded line (video + truth) from a labelled dataset",
        description=(
            "Lay the TEST images of a dataset on a conveyor, ROWS across the belt, moving "
            "STEP pixels per frame through a field of view COLS tiles wide, and write the "
            "video (H.264 where this OpenCV can encode it, else MPEG-4) and its "
            "VIDEO.truth.jsonl: every part not of the ok class, per frame, with its box. "
            "Replay it with `inspector replay VIDEO`; set the config's tiling size and stride "
            "to --tile."
        ),
        epilog=(
            "DATA is 'elpv', 'elpv4' or a folder with one sub-folder per class (optionally "
            "inside train/ val/ test/); only its test part is used, so a model is never "
            "replayed on its own training images.\n"
            "examples:\n"
            "  inspector make-recording elpv --out recordings/elpv-line.mp4\n"
            "  inspector make-recording /data/leather --out recordings/leather.mp4 --rows 3 "
            "--limit 300"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data", metavar="DATA")
    parser.add_argument("--out", type=Path, required=True, help="video file: .mp4, .mkv or .avi")
    parser.add_argument("--tile", type=positive_int, default=224, help="part size in px")
    parser.add_argument("--rows", type=positive_int, default=2, help="parts across the belt")
    parser.add_argument("--cols", type=positive_int, default=6, help="field of view in tiles")
    parser.add_argument("--step", type=positive_int, help="belt travel per frame (default: tile)")
    parser.add_argument("--fps", type=positive_float, default=15.0)
    parser.add_argument("--limit", type=positive_int, help="at most N parts")
    parser.add_argument("--seed", type=int, default=0, help="split and order seed")
    parser.add_argument("--ok-label", help="the defect-free class of a folder dataset")
    parser.add_argument("--json", action="store_true", help="print what was written as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from inspector.acceptance.recording import ConveyorLayout, write_recording
    from inspector.training.datasets import load_dataset

    dataset = load_dataset(args.data, args.seed, args.ok_label)
    layout = ConveyorLayout(args.tile, args.rows, args.cols, args.step or args.tile)
    parts = min(len(dataset.test), args.limit or len(dataset.test))
    with tqdm(total=layout.frame_count(parts), unit="frame", file=sys.stderr) as bar:
        info = write_recording(
            dataset, args.out, layout, args.fps, args.limit, args.seed, progress=bar.update
        )
    summary = {
        "video": str(info.video),
        "truth": str(info.truth),
        "codec": info.codec,
        "frames": info.frames,
        "fps": info.fps,
        "width": layout.width,
        "height": layout.height,
        "parts": info.parts,
        "defective_parts": info.defective_parts,
    }
    print_summary(
        summary,
        f"{info.video}: {info.frames} frames {layout.width}x{layout.height} at {info.fps:g} "
        f"fps ({info.codec}), {info.parts} parts of which {info.defective_parts} defective; "
        f"truth in {info.truth}",
        args.json,
    )
    return 0
