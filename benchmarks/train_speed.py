"""Lite0 on this CPU: fp32 vs channels_last vs bf16 autocast, forward (the probe's feature
pass) and a training step, interleaved rounds, medians. Usage:
    python benchmarks/train_speed.py [--size 224] [--batch 16] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from inspector.training.backbones import build_backbone

MODES = {"fp32": (False, False), "channels_last": (True, False), "bf16": (False, True),
         "bf16+channels_last": (True, True)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_backbone("efficientnet_lite0", 2, image_size=args.size).model
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 2, (args.batch,))
    optimizer = torch.optim.AdamW(model.parameters(), 1e-5)

    def run(mode: str, train: bool) -> float:
        channels_last, bf16 = MODES[mode]
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model.to(memory_format=fmt)  # type: ignore[call-overload]
        inputs = x.contiguous(memory_format=fmt)
        model.eval()
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if train:
                loss = torch.nn.functional.cross_entropy(model(inputs).float(), y)
            else:
                with torch.no_grad():
                    model(inputs)
        if train:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return time.perf_counter() - started

    results: dict[str, dict[str, list[float]]] = {}
    for kind in ("forward", "train_step"):
        for mode in MODES:
            run(mode, kind == "train_step")  # warm-up: first call allocates
        for _ in range(args.rounds):
            for mode in MODES:
                seconds = run(mode, kind == "train_step")
                results.setdefault(kind, {}).setdefault(mode, []).append(seconds)
                print(kind, mode, f"{seconds:.2f} s", flush=True)
    summary = {kind: {mode: round(statistics.median(v), 3) for mode, v in modes.items()}
               for kind, modes in results.items()}  # fmt: skip
    print(json.dumps({"size": args.size, "batch": args.batch, "threads": args.threads,
                      "median_s": summary}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
