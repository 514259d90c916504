"""Configuration: ``config.toml`` overridden by ``INSPECTOR__<SECTION>__<KEY>``.

Precedence, highest first: explicit overrides passed by the CLI, environment
variables, the TOML file, the defaults below. Every bad value becomes one
:class:`~inspector.errors.ConfigError` line naming the file, the field path and
the reason (exit code 78), so a daemon never starts half-configured.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from inspector.capture.sources.base import Identifier

# Re-exported (``as``): code written before sources were plugins imports these from here.
from inspector.capture.sources.base import QueuePolicyName as QueuePolicyName
from inspector.capture.sources.registry import CameraSettings as CameraSettings
from inspector.engines.registry import ModelSettings, default_model_settings
from inspector.environment import ENV_PREFIX as ENV_PREFIX  # re-exported: it was defined here
from inspector.environment import Environment
from inspector.errors import ConfigError
from inspector.publishing.settings import MqttSettings, OutboxSettings
from inspector.sections import Section, SinkSettings, StateFolder
from inspector.sinks.registry import sink_plugins
from inspector.textfiles import read_text
from inspector.validation import describe


class LineSettings(Section):
    id: Identifier = "line1"


class TilingSettings(Section):
    size: int = Field(default=224, ge=8, le=8192)
    stride: int = Field(default=224, ge=1, le=8192)
    roi: tuple[int, int, int, int] | None = Field(
        default=None, description="x, y, width, height in frame pixels; tiles stay inside it"
    )

    @model_validator(mode="after")
    def _stride_not_above_size(self) -> TilingSettings:
        if self.stride > self.size:
            raise ValueError(
                f"stride {self.stride} > size {self.size} would leave pixels uninspected"
            )
        if self.roi is not None:
            x, y, w, h = self.roi
            if x < 0 or y < 0 or w < self.size or h < self.size:
                raise ValueError(
                    f"roi {list(self.roi)} must start at x, y >= 0 and hold one tile "
                    f"({self.size} px)"
                )
        return self


class BatchingSettings(Section):
    max_batch: int = Field(default=32, ge=1, le=4096)
    max_wait_ms: float = Field(default=20.0, ge=0, le=10_000)
    in_flight: int = Field(default=2, ge=1, le=16, description="batches queued for the engine")


class CpuSettings(Section):
    opencv_threads: int = Field(
        default=1,
        ge=0,
        le=256,
        description="OpenCV's own thread pool (decode, remap); 1 leaves the cores to the "
        "engine, 0 = OpenCV's default",
    )


class MetricsSettings(Section):
    """The Prometheus endpoint (/metrics) and the health check (/healthz)."""

    port: int | None = Field(default=None, ge=1, le=65535, description="unset: no endpoint")
    host: str = Field(default="127.0.0.1", description="0.0.0.0 to let a remote Prometheus in")
    stall_after_s: float = Field(
        default=30.0, gt=0, description="/healthz fails when no frame was inferred for this long"
    )


class AcceptanceSettings(Section):
    """Pass/fail limits of ``inspector replay``; unset limits are not checked."""

    min_recall: float | None = Field(
        default=None, ge=0, le=1, description="frame recall and each class's defect recall"
    )
    min_precision: float | None = Field(
        default=None, ge=0, le=1, description="frame precision and each class's"
    )
    max_p99_ms: float | None = Field(
        default=None, gt=0, description="p99 latency from capture to broker acknowledgement"
    )


class VerdictsSettings(Section):
    """``[verdicts]``: one verdict for every part, decided in the pipeline, by a deadline, for
    the sinks that carry verdicts (MQTT ``line/<line>/verdicts/<camera>``, OPC UA)."""

    enabled: bool = False
    deadline_ms: float | None = Field(
        default=None,
        gt=0,
        le=600_000,
        description="a part without a verdict this long after its capture gets a 'late' "
        "verdict at that moment, and its real verdict follows with late = true; unset: no "
        "deadline",
    )
    on_late: Literal["reject", "pass"] = Field(
        default="reject", description="the fail-safe a late verdict asks for (its 'action')"
    )


class LoggingSettings(Section):
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


class Settings(BaseSettings):
    """The whole configuration of one line's daemon."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    line: LineSettings = LineSettings()
    cameras: list[CameraSettings] = Field(min_length=1)
    model: ModelSettings = Field(default_factory=default_model_settings)
    tiling: TilingSettings = TilingSettings()
    batching: BatchingSettings = BatchingSettings()
    cpu: CpuSettings = CpuSettings()
    mqtt: MqttSettings = MqttSettings()
    outbox: OutboxSettings = OutboxSettings()
    metrics: MetricsSettings = MetricsSettings()
    acceptance: AcceptanceSettings = AcceptanceSettings()
    verdicts: VerdictsSettings = VerdictsSettings()
    logging: LoggingSettings = LoggingSettings()

    _state: StateFolder | None = PrivateAttr(default=None)

    @property
    def state(self) -> StateFolder:
        """Where this line's daemon keeps its files (``load_settings`` sets it from the
        config file's folder; ``state/`` of the working folder otherwise)."""
        return self._state or state_folder(self.line.id, Path.cwd())

    def sink_sections(self) -> dict[str, SinkSettings]:
        """Every sink plugin's section, by name (enabled or not)."""
        return {name: section for name, section in self if isinstance(section, SinkSettings)}

    @field_validator("cameras")
    @classmethod
    def _unique_camera_ids(cls, cameras: list[CameraSettings]) -> list[CameraSettings]:
        ids = [camera.id for camera in cameras]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"camera ids must be unique, repeated: {', '.join(duplicates)}")
        return cameras


class _MappingSource(PydanticBaseSettingsSource):
    """A settings source over an already-parsed mapping (the TOML file)."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class _EnvironmentSource(PydanticBaseSettingsSource):
    """pydantic-settings' variables, with ``INSPECTOR__CAMERAS__<n>__KEY`` merged into the
    file's camera ``n`` (alone, it would replace the file's whole list)."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        variables: PydanticBaseSettingsSource,
        environment: Environment,
        file_data: dict[str, Any],
        origin: str,
    ) -> None:
        super().__init__(settings_cls)
        self._variables = variables
        self._environment = environment
        self._file_data = file_data
        self._origin = origin

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        data = dict(self._variables())
        cameras = data.get("cameras")
        if isinstance(cameras, dict):
            data["cameras"] = self._environment.merge_cameras(
                self._file_data.get("cameras"), cameras, self._origin
            )
        return data


def _settings_class(
    file_data: dict[str, Any], environment: Environment | None = None, origin: str = ""
) -> type[Settings]:
    env = environment if environment is not None else Environment({})

    class _FileSettings(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                init_settings,
                _EnvironmentSource(settings_cls, env_settings, env, file_data, origin),
                _MappingSource(settings_cls, file_data),
            )

    # Each plugin sink gets its own top-level section, [name], off unless enabled.
    sections: dict[str, Any] = {
        name: (plugin.settings, plugin.settings())
        for name, plugin in sink_plugins().items()
        if name not in Settings.model_fields
    }
    return create_model("Settings", __base__=_FileSettings, **sections)


def state_folder(line: str, base: Path) -> StateFolder:
    """``$STATE_DIRECTORY`` under systemd, else ``state/`` beside the config file."""
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return StateFolder(Path(state), "") if state else StateFolder(base / "state", f"{line}-")


def _resolve(path: Path, base: Path) -> Path:
    return path if path.is_absolute() else (base / path)


def load_settings(path: Path, **overrides: Any) -> Settings:
    """Read, merge and validate the configuration, or raise one clear ConfigError.

    Relative paths in the file (model, recordings, TLS files) are taken relative
    to the file's own folder, so ``/etc/inspector/line1.toml`` can name its
    neighbours, and the repository's ``config.toml`` runs from anywhere.
    """
    text = read_text(path, ConfigError, "config file")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply") from None
    environment = Environment(os.environ)
    cls = _settings_class(data, environment, str(path))
    plugins = sink_plugins()
    for key in data:
        if key in plugins.broken and key not in cls.model_fields:  # an installed sink that fails
            raise ConfigError(f"{path}: [{key}]: {plugins.problem(key)}")
    environment.check(cls.model_fields)
    try:
        settings = cls(**overrides)
    except SettingsError as exc:  # what the checks above did not foresee, still one line
        raise ConfigError(f"{ENV_PREFIX}*: {exc}") from None
    except RecursionError:  # a value nested deeper than merging and validating can follow
        raise ConfigError(f"{path} or its {ENV_PREFIX} variables: nested too deeply") from None
    except ValidationError as exc:
        # A variable that set the bad field is named instead of the file.
        blame = environment.blame(data.get("cameras"))
        raise ConfigError(describe(exc, cls, str(path), blame)) from None

    base = path.resolve().parent
    cameras = [camera.resolve_paths(base) for camera in settings.cameras]
    model = settings.model.model_copy(update={"path": _resolve(settings.model.path, base)})
    mqtt = settings.mqtt
    if mqtt.tls is not None:
        tls = mqtt.tls.model_copy(
            update={
                name: _resolve(value, base)
                for name in ("ca_file", "cert_file", "key_file")
                if (value := getattr(mqtt.tls, name)) is not None
            }
        )
        mqtt = mqtt.model_copy(update={"tls": tls})
    state = state_folder(settings.line.id, base)
    outbox = settings.outbox
    outbox_path = _resolve(outbox.path, base) if outbox.path else state.place("outbox.sqlite")
    sinks = {
        name: section.resolve_paths(base, state)
        for name, section in settings.sink_sections().items()
    }
    resolved = settings.model_copy(
        update={
            **sinks,
            "cameras": cameras,
            "model": model,
            "mqtt": mqtt,
            "outbox": outbox.model_copy(update={"path": outbox_path}),
        }
    )
    resolved._state = state
    return resolved
