"""Engine backends as plugins: one file each, found by the registry, picked by ``model.backend``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import TypeAdapter, ValidationError

import inspector.engines
from inspector.config import load_settings
from inspector.engines import registry, tensorrt_engine
from inspector.engines.base import EngineSettings
from inspector.engines.onnxruntime_engine import OnnxRuntimeEngine, OnnxRuntimeSettings
from inspector.engines.registry import create_engine
from inspector.engines.tensorrt_engine import TensorRtSettings
from inspector.errors import EX_CONFIG, ConfigError, ModelError
from tests.fixtures import processes
from tests.fixtures.models import build_color_model

CAMERA = '[[cameras]]\nid = "cam0"\nsource = "recordings/a.mp4"\n'
KNOWN = "'auto', 'onnxruntime', 'openvino', 'tensorrt'"
UNKNOWN = f"model: unknown backend 'stray'; known backends: {KNOWN}"


def write(tmp_path: Path, model: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CAMERA + model)
    return path


def test_the_registry_holds_every_backend_module() -> None:
    assert list(registry.PLUGINS) == ["onnxruntime", "openvino", "tensorrt"]  # auto: a choice
    assert registry.PLUGINS["onnxruntime"].settings is OnnxRuntimeSettings
    assert registry.PLUGINS["tensorrt"].settings is TensorRtSettings


@pytest.mark.parametrize(
    "model",
    [
        "",
        '[model]\npath = "engines/m.onnx"\n',
        '[model]\npath = "engines/m.onnx"\nthreads = 1\n',
        '[model]\npath = "engines/m.onnx"\nbackend = "onnxruntime"\nthreads = 1\n',
    ],
)
def test_backend_defaults_to_onnxruntime(tmp_path: Path, model: str) -> None:
    settings = load_settings(write(tmp_path, model))
    assert isinstance(settings.model, OnnxRuntimeSettings)
    assert settings.model.backend == "onnxruntime"
    assert settings.model.threads == (1 if "threads" in model else 0)
    if model:
        assert settings.model.path == tmp_path / "engines/m.onnx"  # still made relative


def test_tensorrt_options_are_read(tmp_path: Path) -> None:
    settings = load_settings(
        write(
            tmp_path,
            '[model]\npath = "m.onnx"\nbackend = "tensorrt"\ncontexts = 4\n'
            'precision = "fp16"\ncuda_graphs = false\n',
        )
    )
    assert settings.model == TensorRtSettings(
        path=tmp_path / "m.onnx", contexts=4, precision="fp16", cuda_graphs=False
    )
    default = load_settings(write(tmp_path, '[model]\nbackend = "tensorrt"\n')).model
    assert isinstance(default, TensorRtSettings)
    assert (default.contexts, default.precision, default.cuda_graphs) == (2, None, True)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ('backend = "tensorrt"\nthreads = 1', "model.threads: unknown key"),
        ('backend = "onnxruntime"\ncontexts = 2', "model.contexts: unknown key"),
        ("contexts = 2", "model.contexts: unknown key"),
        (
            'backend = "tensorrt"\ncontexts = 0',
            "model.contexts: Input should be greater than or equal to 1",
        ),
        ('backend = "tensorrt"\nprecision = "fp8"', "model.precision: Input should be"),
        ("threads = -1", "model.threads: Input should be greater than or equal to 0"),
        ('backend = "tensorrt"\npath = "m.pt"', "model.path: must name an .onnx file"),
    ],
)
def test_bad_model_options_name_the_field(tmp_path: Path, model: str, expected: str) -> None:
    path = write(tmp_path, f"[model]\n{model}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(caught.value).startswith(f"{path}: {expected}")


def test_environment_picks_the_backend_and_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, '[model]\npath = "m.onnx"\n')
    monkeypatch.setenv("INSPECTOR__MODEL__BACKEND", "tensorrt")
    monkeypatch.setenv("INSPECTOR__MODEL__CONTEXTS", "3")
    model = load_settings(path).model
    assert isinstance(model, TensorRtSettings) and model.contexts == 3
    monkeypatch.setenv("INSPECTOR__MODEL__CONTEXTS", "17")
    with pytest.raises(ConfigError, match=r"^INSPECTOR__MODEL__CONTEXTS: model\.contexts: "):
        load_settings(path)


def test_unknown_backend_is_one_line_listing_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, '[model]\nbackend = "stray"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(caught.value) == f"{path}: {UNKNOWN}"
    result = processes.inspector("run", "--config", str(path), timeout=60)
    assert result.returncode == EX_CONFIG
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and UNKNOWN in lines[0]
    assert "'onnxruntime'" in lines[0] and "'tensorrt'" in lines[0]


def test_loading_the_configuration_imports_no_runtime() -> None:
    code = (
        "import sys, inspector.config; "
        "print(sorted(m for m in ('onnxruntime', 'tensorrt', 'cuda') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_create_engine_opens_the_chosen_plugin(tmp_path: Path) -> None:
    path = tmp_path / "demo.onnx"
    card = build_color_model(path, size=16)
    engine = create_engine(OnnxRuntimeSettings(path=path, threads=1), max_batch=2)
    try:
        assert isinstance(engine, OnnxRuntimeEngine) and engine.card == card
    finally:
        engine.close()

    class Stray(EngineSettings):
        backend: Literal["stray"] = "stray"

    with pytest.raises(ModelError, match=rf"unknown backend 'stray'; known backends: {KNOWN}"):
        create_engine(Stray(path=path), max_batch=2)


def test_tensorrt_options_reach_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "demo.onnx"
    card = build_color_model(path, size=16)
    opened: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    class Recorder:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            opened.append((args, kwargs))

    monkeypatch.setattr(tensorrt_engine, "TensorRtEngine", Recorder)
    settings = TensorRtSettings(path=path, contexts=3, precision="int8", cuda_graphs=False)
    assert isinstance(create_engine(settings, max_batch=8), Recorder)
    assert opened == [
        (
            (path, card),
            {"max_batch": 8, "contexts": 3, "precision": "int8", "cuda_graphs": False},
        )
    ]


PLUGIN_MODULE = """
from typing import Literal

from pydantic import Field

from inspector.engines.base import EnginePlugin, EngineSettings


class EchoSettings(EngineSettings):
    backend: Literal["echo"] = "echo"
    gain: float = Field(default=1.0, gt=0)


def _open(settings, card, max_batch):
    return ("echo", settings.gain, card, max_batch)


PLUGIN = EnginePlugin(EchoSettings, _open)
"""


@pytest.fixture
def echo_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``echo_engine.py`` in a second folder of the ``inspector.engines`` package."""
    folder = tmp_path / "more_engines"
    folder.mkdir()
    (folder / "echo_engine.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    (folder / "notes.py").write_text("HELPER = 1\n")  # a module without PLUGIN is no backend
    monkeypatch.setattr(inspector.engines, "__path__", [*inspector.engines.__path__, str(folder)])
    yield folder
    for name in ("inspector.engines.echo_engine", "inspector.engines.notes"):
        sys.modules.pop(name, None)


def test_a_new_backend_module_is_found_without_other_edits(echo_backend: Path) -> None:
    plugins = registry.discover()
    assert list(plugins) == ["echo", "onnxruntime", "openvino", "tensorrt"]
    adapter: TypeAdapter[EngineSettings] = TypeAdapter(registry.model_settings_union(plugins))
    echo = adapter.validate_python({"backend": "echo", "gain": 2.5})
    assert type(echo).__name__ == "EchoSettings" and echo.model_dump()["gain"] == 2.5
    assert isinstance(adapter.validate_python({"path": "m.onnx"}), OnnxRuntimeSettings)
    with pytest.raises(ValidationError, match=r"echo.gain\n  Input should be greater than 0"):
        adapter.validate_python({"backend": "echo", "gain": 0})
    with pytest.raises(ValidationError, match="known backends: 'auto', 'echo', 'onnxruntime'"):
        adapter.validate_python({"backend": "stray"})
    assert plugins["echo"].open(echo, "card", 4) == ("echo", 2.5, "card", 4)


def test_two_modules_claiming_one_backend_fail_at_discovery(echo_backend: Path) -> None:
    (echo_backend / "echo_again.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    try:
        with pytest.raises(TypeError, match="backend 'echo' is declared twice"):
            registry.discover()
    finally:
        sys.modules.pop("inspector.engines.echo_again", None)
