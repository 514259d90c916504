"""The frozen front: a body run in two parts is the body, and fine-tuning with a frozen
front trains only the stages after it, on real ELPV cells."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="training needs the [train] extra (PyTorch)")
tqdm = pytest.importorskip("tqdm").tqdm

from inspector.training import trainer as trainer_module  # noqa: E402
from inspector.training.backbones import build_backbone  # noqa: E402
from inspector.training.datasets import load_elpv  # noqa: E402
from inspector.training.parts import decode_parts  # noqa: E402
from inspector.training.resnet import ResNet50Body  # noqa: E402
from inspector.training.staged import front_stages  # noqa: E402
from inspector.training.state import TrainOptions  # noqa: E402


@pytest.fixture(scope="module")
def lite0() -> object:
    torch.set_num_threads(2)
    return build_backbone("efficientnet_lite0", 2, None, 96)


def test_a_body_run_in_two_parts_is_the_whole_body(lite0: object) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 96, 96)
    for body in (lite0.body.eval(), ResNet50Body().eval()):  # type: ignore[attr-defined]
        with torch.no_grad():
            whole = body(x)
            for split in (1, body.stage_count // 2, body.stage_count - 1):
                parts = body.run(body.run(x, 0, split), split)
                torch.testing.assert_close(parts, whole, rtol=1e-5, atol=1e-5)
        assert whole.shape == (2, 2048 if isinstance(body, ResNet50Body) else 1280)


def test_the_front_ends_at_the_last_stage_within_the_stride(lite0: object) -> None:
    body = lite0.body.eval()  # type: ignore[attr-defined]
    count, shape = front_stages(body, 96, 8)
    with torch.no_grad():
        inside = body.run(torch.zeros(1, 3, 96, 96), 0, count)
        beyond = body.run(torch.zeros(1, 3, 96, 96), 0, count + 1)
    assert tuple(inside.shape[1:]) == shape
    assert 8 * inside.shape[-1] >= 96 > 8 * beyond.shape[-1]
    assert front_stages(body, 96, 0)[0] == 0  # 0: nothing frozen
    assert front_stages(body, 96, 10**6)[0] == body.stage_count - 1  # the last stage trains


def _trainer(tmp_path: Path, **options: object) -> trainer_module.Trainer:
    dataset = load_elpv("binary")
    parts = decode_parts(dataset, 64, 6, tqdm)
    backbone = build_backbone("efficientnet_lite0", 2, None, 64)
    chosen = TrainOptions(image_size=64, batch_size=6, views=1, threads=2, **options)  # type: ignore[arg-type]
    return trainer_module.Trainer(backbone, parts, 2, chosen, tmp_path / "checkpoint.pt", tqdm)


def test_finetuning_with_a_frozen_front_trains_only_the_stages_after_it(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, epochs=1, lr=1e-3)
    assert trainer.front == front_stages(trainer.backbone.body, 64, 8)[0] > 0
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.probe()
    trainer.finetune()
    assert trainer.state.history[-1].phase == "finetune"
    # The probe's view and its augmented one were kept for fine-tuning.
    assert {("train", 0), ("train", 1)} <= set(trainer._fronts)
    stages = trainer.backbone.stages
    after = trainer.model.state_dict()
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    frozen = [names[id(p)] for s in stages[: trainer.front] for p in s.parameters()]
    trained = [names[id(p)] for s in stages[trainer.front :] for p in s.parameters()]
    assert frozen and all(torch.equal(before[n], after[n]) for n in frozen)
    assert any(not torch.equal(before[n], after[n]) for n in trained)


def test_a_front_too_big_for_memory_fine_tunes_the_whole_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(trainer_module, "FRONT_MEMORY", 1024)
    assert _trainer(tmp_path, epochs=1).front == 0
    assert "every stage is fine-tuned" in capsys.readouterr().err
    assert _trainer(tmp_path, epochs=0).front == 0  # the probe alone keeps no front
    assert _trainer(tmp_path, epochs=1, frozen_stride=0).front == 0


def test_a_training_batch_is_a_kept_view_shifted_by_whole_cells() -> None:
    import numpy as np

    from inspector.training.staged import FrozenFront

    torch.manual_seed(0)
    views = [torch.randn(4, 3, 20, 20).half() for _ in range(2)]
    chosen = np.array([2, 0, 3, 3, 1])
    batch = FrozenFront.batch(views, chosen, np.random.default_rng(1))
    assert batch.shape == (5, 3, 20, 20)
    m = 1  # 5 % of 20 cells
    shifts = set()
    for k, index in enumerate(chosen):
        inner = batch[k, :, m:-m, m:-m]
        offsets = [(dy, dx) for dy in range(2 * m + 1) for dx in range(2 * m + 1)]
        found = [
            (dy, dx)
            for view in views
            for dy, dx in offsets
            if torch.equal(inner, view[index, :, dy : dy + 18, dx : dx + 18].float())
        ]
        assert found, f"sample {k} is no shifted window of image {index}'s views"
        shifts.update(found)
    assert len(shifts) > 1  # not always the same shift
