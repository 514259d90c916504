"""``inspector train``: LP-FT transfer learning on defect images, export ONNX + card."""

from __future__ import annotations

import argparse
from pathlib import Path

from inspector.training.state import AFTER_FRONT_LR, WHOLE_NETWORK_LR, TrainOptions

DESCRIPTION = """\
LP-FT transfer learning, in minutes on a CPU: every image is decoded once; the
pretrained body runs once per image (plus a few augmented views) and a probe (the head
fitted to convergence on those features, weight decay chosen on validation) is trained;
then the network is fine-tuned from that head, at a low learning rate with layer-wise
decay and the pretrained BatchNorm statistics kept, after a frozen front: the first
stages (up to --frozen-stride) run once per image and view, so each epoch runs only the
rest (about 2.5x faster on a CPU). The better of probe and
fine-tuned on validation is exported; both are in the report. --budget-min stops
fine-tuning at a wall time with the best model so far. Image size (from the data), class
weights and surface augmentation are chosen for you; the card says what and why.
Writes OUT.onnx (checked against ONNX Runtime), OUT.json (the card) and OUT-report/
(metrics.json, curves.png, confusion.png). Needs the [train] extra (PyTorch)."""

DEFAULTS = TrainOptions()  # one place for the defaults (this module loads no torch)
BACKBONE_CHOICES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2",
                    "resnet50", "auto")  # fmt: skip


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "train",
        help="train (probe, then fine-tune) a pretrained CNN and export the model the daemon runs",
        description=DESCRIPTION,
        epilog=(
            "DATA: 'elpv', 'elpv4', or a folder with one sub-folder per class. A folder with\n"
            "no defect-free class (ok/good/normal/functional) trains a defect-type classifier\n"
            "(card ok_label null) unless --ok-dir gives defect-free images.\n"
            "examples:\n"
            "  inspector train elpv --out engines/elpv-lite0\n"
            "  inspector train elpv --out engines/elpv-probe --epochs 0     # probe only\n"
            "  inspector train /data/neu-cls --out engines/neu --ok-dir /data/good-tiles\n"
            "  inspector train /data/gc10 --out engines/gc10 --backbone resnet50 "
            "--weights resnet50.pth"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data", metavar="DATA")
    parser.add_argument("--out", type=Path, required=True, help="output stem, e.g. engines/NAME")
    parser.add_argument(
        "--backbone",
        default="efficientnet_lite0",
        choices=BACKBONE_CHOICES,
        help="auto: probe the Lite backbones within the budget, keep the best",
    )
    parser.add_argument(
        "--weights", type=Path, help="ImageNet weights file (resnet50: a torchvision state_dict)"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=DEFAULTS.epochs,
        help="fine-tuning epochs after the probe (0: the probe only)",
    )
    parser.add_argument(
        "--budget-min",
        type=float,
        default=25.0,
        help="wall-time budget in minutes; fine-tuning stops there with the "
        "best model so far (0: none). Export and evaluation come after it",
    )
    parser.add_argument("--batch", type=int, default=DEFAULTS.batch_size)
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"fine-tuning learning rate of the last stage (default: {AFTER_FRONT_LR:g} after "
        f"a frozen front, {WHOLE_NETWORK_LR:g} when every stage is fine-tuned)",
    )
    parser.add_argument(
        "--layer-decay",
        type=float,
        default=DEFAULTS.layer_decay,
        help="each earlier stage's learning rate is this times the next's",
    )
    parser.add_argument(
        "--frozen-stride",
        type=int,
        default=DEFAULTS.frozen_stride,
        help="fine-tuning leaves the body's stages up to this output stride as pretrained, "
        "runs them once per image and view and trains only the rest (0: the whole network)",
    )
    parser.add_argument(
        "--views",
        type=int,
        default=DEFAULTS.views,
        help="augmented views per training image in the probe's features",
    )
    parser.add_argument(
        "--image-size", type=int, help="input edge in px (default: from the data, 96-320)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="at most N images per class and part")
    parser.add_argument("--ok-label", help="the defect-free class of a folder dataset")
    parser.add_argument(
        "--ok-dir", type=Path, help="defect-free images from elsewhere, added as class 'ok'"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 …")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = PyTorch's)")
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="bf16: autocast (measured slower on a CPU without bf16 units)",
    )
    parser.add_argument(
        "--channels-last",
        action="store_true",
        help="NHWC memory format (measured: README 'Training')",
    )
    parser.add_argument(
        "--feature-cache",
        type=Path,
        help="folder of cached features (default $INSPECTOR_FEATURE_CACHE or "
        "~/.cache/inspector/features); 'none' turns it off",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from OUT-report/checkpoint.pt"
    )
    parser.set_defaults(func=run)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from inspector.errors import ConfigError, ModelError
    from inspector.training.datasets import load_dataset

    try:
        from tqdm import tqdm

        from inspector.training.run import train
    except ImportError as exc:
        raise ModelError(
            f"training needs the [train] extra ({exc.name} is missing): "
            "pip install 'line-inspector[train]'"
        ) from None
    for name in ("epochs", "views", "batch", "frozen_stride"):
        if getattr(args, name) < (1 if name == "batch" else 0):
            flag = name.replace("_", "-")
            raise ConfigError(f"--{flag}: must be >= {1 if name == 'batch' else 0}")
    if args.resume and args.backbone == "auto":
        raise ConfigError("--resume: give the backbone the first run chose, not auto")
    dataset = load_dataset(
        args.data, seed=args.seed, ok_label=args.ok_label, ok_dir=args.ok_dir, types_only=True
    )
    options = TrainOptions(
        backbone=args.backbone, weights=args.weights, epochs=args.epochs,
        batch_size=args.batch, lr=args.lr, layer_decay=args.layer_decay,
        image_size=args.image_size or 224, views=args.views,
        budget_min=args.budget_min or None, seed=args.seed, limit=args.limit,
        device=args.device, threads=args.threads, bf16=args.precision == "bf16",
        channels_last=args.channels_last, frozen_stride=args.frozen_stride,
    )  # fmt: skip
    from inspector.training.features import default_cache_root

    cache = args.feature_cache or default_cache_root()
    train(
        dataset,
        options,
        args.out,
        tqdm,
        resume=args.resume,
        size_given=bool(args.image_size),
        cache_root=None if str(cache) == "none" else cache,
    )
    return 0
