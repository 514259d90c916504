"""Configuration: TOML + environment overrides, and one clear line (exit 78) for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspector.config import load_settings
from inspector.errors import EX_CONFIG, ConfigError
from tests.fixtures.processes import inspector

GOOD = """
[line]
id = "line7"

[[cameras]]
id = "cam0"
source = "recordings/a.mp4"

[[cameras]]
id = "cam1"
source = "/dev/video2"

[model]
path = "engines/m.onnx"

[tiling]
size = 224
stride = 112
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_file_values_and_relative_paths(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD))
    assert settings.line.id == "line7"
    assert [c.id for c in settings.cameras] == ["cam0", "cam1"]
    assert settings.cameras[0].source == str(tmp_path / "recordings/a.mp4")
    assert settings.cameras[1].source == "/dev/video2"
    assert settings.model.path == tmp_path / "engines/m.onnx"
    assert settings.tiling.stride == 112
    assert settings.mqtt.port == 1883  # default


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSPECTOR__MQTT__PORT", "2883")
    monkeypatch.setenv("INSPECTOR__TILING__STRIDE", "224")
    monkeypatch.setenv("INSPECTOR__LINE__ID", "line9")
    settings = load_settings(write(tmp_path, GOOD))
    assert (settings.mqtt.port, settings.tiling.stride, settings.line.id) == (2883, 224, "line9")


def test_password_is_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSPECTOR__MQTT__PASSWORD", "hunter2")
    settings = load_settings(write(tmp_path, GOOD))
    assert settings.mqtt.password is not None
    assert settings.mqtt.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("stride = 112", "stride = 300"), "tiling: stride 300 > size 224"),
        (("size = 224", "size = 'big'"), "tiling.size: Input should be a valid integer"),
        (('id = "cam1"', 'id = "cam0"'), "cameras: camera ids must be unique, repeated: cam0"),
        (('path = "engines/m.onnx"', 'path = "m.pt"'), "model.path: must name an .onnx file"),
        (("[tiling]", "[tiling]\nstrde = 3"), "tiling.strde: unknown key; did you mean `stride`?"),
        (('id = "line7"', 'id = "line 7/"'), "line.id: String should match pattern"),
    ],
)
def test_bad_values_name_the_field(tmp_path: Path, edit: tuple[str, str], expected: str) -> None:
    path = write(tmp_path, GOOD.replace(*edit))
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


def test_bad_environment_value_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INSPECTOR__MQTT__PORT", "99999")
    with pytest.raises(ConfigError, match=r"^INSPECTOR__MQTT__PORT: mqtt.port: Input should be"):
        load_settings(write(tmp_path, GOOD))


def test_missing_cameras_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cameras: Field required"):
        load_settings(write(tmp_path, "[line]\nid = 'x'\n"))
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(write(tmp_path, "[line\n"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "absent.toml")


def test_cli_exits_78_with_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("stride = 112", "stride = 0"))
    result = inspector("run", "--config", str(path), timeout=60)
    assert result.returncode == EX_CONFIG
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "tiling.stride: Input should be greater than or equal to 1" in lines[0]
