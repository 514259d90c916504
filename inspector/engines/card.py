"""The model card (``inspector.model/1``) and the checks that tie it to its ONNX file.

A card is the JSON beside ``<name>.onnx``. :func:`load_model` refuses a model
whose card is malformed, whose sha256 differs from the file, or whose names and
shapes disagree with the ONNX graph, each as one :class:`ModelError` line that
names the mismatch, so a wrong file on a line PC stops the daemon at start
instead of producing nonsense verdicts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
from pydantic import ValidationError

from inspector.errors import ModelError, first_line
from inspector.textfiles import read_text
from inspector.types.card import ModelCard


def card_path(onnx_path: Path) -> Path:
    """The card is the ``.json`` beside the ``.onnx``."""
    return Path(onnx_path).with_suffix(".json")


def file_sha256(path: Path) -> str:
    # Streamed: production models can be hundreds of MB.
    with Path(path).open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def write_card(card: ModelCard, onnx_path: Path) -> ModelCard:
    """Write ``card`` beside ``onnx_path`` with the file's real sha256; return that card."""
    card = card.model_copy(update={"sha256": file_sha256(onnx_path)})
    text = json.dumps(card.model_dump(mode="json", by_alias=True), indent=2, ensure_ascii=False)
    card_path(onnx_path).write_text(text + "\n", encoding="utf-8")
    return card


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def read_card(path: Path) -> ModelCard:
    """Parse and validate one card file, or raise one ``<path>: <field>: <reason>`` line."""
    text = read_text(path, ModelError, "model card", " (it must sit beside the .onnx)")
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: invalid JSON: {exc}") from None
    except RecursionError:
        raise ModelError(f"{path}: invalid JSON: nested too deeply") from None
    except ValueError as exc:  # NaN/Infinity, or an integer too long to convert
        raise ModelError(f"{path}: invalid JSON: {exc}") from None
    try:
        return ModelCard.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        reason = first["msg"].removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ModelError(f"{path}: {where}: {reason}{more}") from None


def _dims(value: onnx.ValueInfoProto) -> list[int | str] | None:
    """Static sizes as ints, dynamic ones as their name (or "?"); None when no shape."""
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim
    ]


def _graph_problems(graph: onnx.GraphProto, card: ModelCard) -> list[str]:
    problems: list[str] = []
    spec = card.input
    # Before IR 4, initializers were listed as graph inputs too; they are not fed.
    weights = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in weights]
    names = [value.name for value in inputs]
    if names != [spec.name]:
        problems.append(
            f"card input.name is {spec.name!r} but the graph's inputs are {names} "
            "(the daemon feeds exactly one)"
        )
    else:
        tensor = inputs[0].type.tensor_type
        if tensor.elem_type != onnx.TensorProto.FLOAT:
            dtype = onnx.TensorProto.DataType.Name(tensor.elem_type)
            problems.append(f"input {spec.name!r} is {dtype}; the daemon feeds FLOAT (float32)")
        dims = _dims(inputs[0])
        if dims is None or len(dims) != 4:
            problems.append(f"input {spec.name!r} has shape {dims}; expected 4-D [N, C, H, W]")
        else:
            if isinstance(dims[0], int):
                problems.append(
                    f"input {spec.name!r} has a fixed batch dimension N = {dims[0]}; "
                    "the batch dimension must be dynamic (re-export with a dynamic axis)"
                )
            expected = {"channels": card.channels, "height": spec.height, "width": spec.width}
            for (what, want), got in zip(expected.items(), dims[1:], strict=True):
                if isinstance(got, int) and got != want:
                    problems.append(f"card input {what} is {want} but graph input has {got}")
    outputs = {value.name: value for value in graph.output}
    if card.output.name not in outputs:
        problems.append(
            f"card output.name is {card.output.name!r} but the graph's outputs are {list(outputs)}"
        )
    else:
        dims = _dims(outputs[card.output.name])
        if dims is not None and len(dims) != 2:
            problems.append(
                f"output {card.output.name!r} has shape {dims}; expected 2-D [N, labels]"
            )
        elif dims is not None and isinstance(dims[-1], int) and dims[-1] != len(card.labels):
            problems.append(
                f"card has {len(card.labels)} labels but output {card.output.name!r} "
                f"has {dims[-1]} scores per tile"
            )
    return problems


def load_model(onnx_path: Path) -> ModelCard:
    """Validate ``onnx_path`` and its card against each other; return the card."""
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ModelError(f"{onnx_path}: model file not found")
    card = read_card(card_path(onnx_path))
    actual = file_sha256(onnx_path)
    if actual != card.sha256:
        raise ModelError(
            f"{onnx_path}: sha256 {actual[:12]}… does not match the card's "
            f"{card.sha256[:12]}…; re-export or fix the card"
        )
    try:
        # External weights are not needed to check names and shapes.
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # protobuf raises several unrelated types on garbage input
        raise ModelError(f"{onnx_path}: not a readable ONNX model: {first_line(exc)}") from None
    if not model.HasField("graph"):  # an empty or truncated file parses as an empty message
        raise ModelError(f"{onnx_path}: not a readable ONNX model: it holds no graph")
    problems = _graph_problems(model.graph, card)
    if problems:
        raise ModelError(f"{onnx_path}: does not match its card: {'; '.join(problems)}")
    return card


def checked_scores(raw: object, n: int, card: ModelCard, model: Path) -> npt.NDArray[np.float32]:
    """A backend's output for ``n`` tiles as ``(n, len(card.labels))``, or one ModelError line
    when the model gives another number of scores per tile (a dynamic class dimension that
    the card's labels do not match, which the graph alone cannot show)."""
    scores = np.asarray(raw, dtype=np.float32)
    labels = len(card.labels)
    if scores.size != n * labels:
        per_tile = f"{scores.size // n}" if n and scores.size % n == 0 else f"shape {scores.shape}"
        raise ModelError(
            f"{model}: the model gives {per_tile} scores per tile but its card has {labels} "
            f"labels ({', '.join(card.labels)}); fix the card's labels or re-export the model"
        )
    return scores.reshape(n, labels)
