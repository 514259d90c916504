"""The model card, ``inspector.model/1``: what a model is (labels, input, output, thresholds).

A plain validated type: the engines check a card against its ONNX graph
(:mod:`inspector.engines.card`), every other stage only reads it.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from inspector.errors import ModelError

SCHEMA: Final = "inspector.model/1"
DEFAULT_THRESHOLD = 0.5

Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class _Part(BaseModel):
    # DESIGN.md: "Fields beyond these are free" (training metadata, notes, ...).
    model_config = ConfigDict(extra="allow", frozen=True)


class InputSpec(_Part):
    """How a tile becomes the model's NCHW float32 input: ``(pixel / scale - mean) / std``."""

    name: str = Field(min_length=1)
    height: int = Field(ge=1)
    width: int = Field(ge=1)
    color: Literal["rgb", "gray"]
    scale: float = Field(gt=0)
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def channels(self) -> int:
        return 3 if self.color == "rgb" else 1

    @field_validator("mean", "std")
    @classmethod
    def _one_per_channel(cls, value: tuple[float, ...], info: ValidationInfo) -> tuple[float, ...]:
        color = info.data.get("color")  # absent when color itself failed validation
        expected = {"rgb": 3, "gray": 1}.get(str(color))
        if expected is not None and len(value) != expected:
            raise ValueError(f"{color} needs {expected} value(s), got {len(value)}")
        if info.field_name == "std" and any(s <= 0 for s in value):
            raise ValueError(f"every std must be > 0, got {list(value)}")
        return value


class OutputSpec(_Part):
    name: str = Field(min_length=1)
    kind: Literal["logits", "probabilities"]


class ModelCard(_Part):
    """The validated ``<name>.json`` of one model."""

    # "schema" would shadow a (deprecated) BaseModel attribute, hence the alias.
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    schema_: Literal["inspector.model/1"] = Field(default=SCHEMA, alias="schema")
    name: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    labels: tuple[str, ...] = Field(min_length=2)
    # null: a defect-type classifier with no defect-free class (every label is a defect
    # type; a tile is a defect where its best class reaches that class's threshold).
    # Required even then, so a card that forgets it is refused rather than read as one.
    ok_label: str | None
    input: InputSpec
    output: OutputSpec
    thresholds: dict[str, Probability] = Field(default_factory=dict)

    @field_validator("sha256", mode="before")
    @classmethod
    def _lower_hex(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, labels: tuple[str, ...]) -> tuple[str, ...]:
        if any(not label for label in labels):
            raise ValueError("labels must be non-empty strings")
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"labels must be unique, repeated: {', '.join(repeated)}")
        return labels

    @field_validator("ok_label")
    @classmethod
    def _ok_is_a_label(cls, value: str | None, info: ValidationInfo) -> str | None:
        labels = info.data.get("labels")
        if value is not None and labels is not None and value not in labels:
            raise ValueError(f"{value!r} is not one of the labels {list(labels)}")
        return value

    @field_validator("thresholds")
    @classmethod
    def _thresholds_for_labels(
        cls, value: dict[str, float], info: ValidationInfo
    ) -> dict[str, float]:
        labels = info.data.get("labels")
        unknown = sorted(set(value) - set(labels)) if labels is not None else []
        if unknown:
            raise ValueError(f"{unknown} not among the labels {list(labels or ())}")
        return value

    @property
    def channels(self) -> int:
        return self.input.channels

    @property
    def defect_labels(self) -> tuple[str, ...]:
        """Every label except ``ok_label`` (all of them for a type classifier), in order."""
        return tuple(label for label in self.labels if label != self.ok_label)

    @property
    def has_ok(self) -> bool:
        """False for a defect-type classifier (``ok_label`` null)."""
        return self.ok_label is not None

    @property
    def ok_index(self) -> int:
        if self.ok_label is None:
            raise ModelError(f"{self.name}: a defect-type classifier has no ok class")
        return self.labels.index(self.ok_label)

    def threshold_for(self, label: str) -> float:
        """The score at which ``label`` makes a tile a defect (DESIGN.md default 0.5)."""
        return self.thresholds.get(label, DEFAULT_THRESHOLD)
