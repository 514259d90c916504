"""Model cards (issue 18): a card whose labels do not match a model with a dynamic class
dimension is refused at load, after one real inference, in one line with exit 78."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from inspector.config import load_settings
from inspector.engines.card import card_path, load_model, write_card
from inspector.engines.registry import create_engine
from inspector.errors import EX_CONFIG, ModelError
from tests.fixtures.models import build_color_model
from tests.fixtures.processes import clean_env, inspector


def dynamic_classes_model(path: Path, labels: tuple[str, ...]) -> Path:
    """The test colour model (3 scores per tile) with its class dimension left dynamic in
    the graph, and a card listing ``labels``."""
    card = build_color_model(path, size=32)
    model = onnx.load(str(path))
    dim = model.graph.output[0].type.tensor_type.shape.dim[1]
    dim.ClearField("dim_value")
    dim.dim_param = "classes"
    onnx.save(model, str(path))
    write_card(card.model_copy(update={"labels": labels, "thresholds": {}}), path)
    return path


def config(tmp_path: Path, model: Path, backend: str = "onnxruntime") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        '[[cameras]]\nid = "cam0"\nsource = "absent.mp4"\n'
        f'[model]\npath = "{model}"\nbackend = "{backend}"\n[tiling]\nsize = 32\nstride = 32\n'
        # Unreachable: the model must be refused before the broker is tried.
        "[mqtt]\nport = 1\n"
    )
    return path


def test_the_graph_check_cannot_see_it_but_one_inference_does(tmp_path: Path) -> None:
    model = dynamic_classes_model(tmp_path / "m.onnx", ("ok", "crack", "stain", "chip"))
    load_model(model)  # names and shapes agree: the class dimension is dynamic
    settings = load_settings(config(tmp_path, model))
    with pytest.raises(ModelError) as caught:
        create_engine(settings.model, 4)
    assert str(caught.value) == (
        f"{model}: the model gives 3 scores per tile but its card has 4 labels "
        "(ok, crack, stain, chip); fix the card's labels or re-export the model"
    )


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "auto"])
def test_run_exits_78_with_one_line(tmp_path: Path, backend: str) -> None:
    if backend == "openvino":
        pytest.importorskip("openvino")
    model = dynamic_classes_model(tmp_path / "m.onnx", ("ok", "crack"))
    result = inspector("run", "--config", str(config(tmp_path, model, backend)), env=clean_env())
    assert result.returncode == EX_CONFIG, result.stderr
    assert result.stderr.strip() == (
        f"inspector run: error: {model}: the model gives 3 scores per tile but its card has "
        "2 labels (ok, crack); fix the card's labels or re-export the model"
    )
    assert "Traceback" not in result.stderr


def test_a_matching_card_still_loads(tmp_path: Path) -> None:
    model = dynamic_classes_model(tmp_path / "m.onnx", ("ok", "crack", "stain"))
    assert card_path(model).is_file()
    engine = create_engine(load_settings(config(tmp_path, model)).model, 2)
    engine.close()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[" * 100_000 + "]" * 100_000, "invalid JSON: nested too deeply"),
        ('{"name": NaN}', "invalid JSON: NaN is not a number JSON allows"),
        ('{"labels": [Infinity]}', "invalid JSON: Infinity is not a number JSON allows"),
    ],
)
def test_a_card_that_is_no_json_is_one_line(tmp_path: Path, text: str, reason: str) -> None:
    model = tmp_path / "m.onnx"
    build_color_model(model, size=32)
    card_path(model).write_text(text)
    with pytest.raises(ModelError) as caught:
        load_model(model)
    assert str(caught.value) == f"{card_path(model)}: {reason}"
