"""Configuration mistakes (issue 18): a typo is named with the key it was meant to be, and
an environment variable is named when it is the one at fault; exit 78, one line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from inspector.capture.sources.file import FileSettings
from inspector.config import load_settings
from inspector.errors import EX_CONFIG, ConfigError
from tests.fixtures.processes import REPO, clean_env, inspector

CONFIG = """
[[cameras]]
id = "cam0"
source = "a.mp4"

[[cameras]]
id = "cam1"
source = "b.mp4"
"""


def run(config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``inspector run --config CONFIG``, no ``INSPECTOR__`` variables but ``env``."""
    return inspector("run", "--config", str(config), timeout=60, cwd=REPO, env=clean_env(**env))


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    return path


def test_a_typo_is_named_first_with_the_key_it_was_meant_to_be(config: Path) -> None:
    config.write_text(CONFIG.replace('source = "a.mp4"', 'sorce = "a.mp4"'))
    result = run(config)
    assert result.returncode == EX_CONFIG
    # The missing `source` is the same mistake: not counted as one more.
    assert one_line(result) == (
        f"inspector run: error: {config}: cameras.0.sorce: unknown key; did you mean `source`?"
    )


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("[[cameras]]", "[mqqt]\nport = 1\n\n[[cameras]]"),
            "mqqt: unknown key; did you mean `mqtt`?",
        ),
        (
            ('source = "b.mp4"', 'source = "0"\nloop = true'),
            "cameras.1.loop: unknown key for type = 'usb' (a key of type = 'file')",
        ),
        (
            ("[[cameras]]", "[mqtt.tls]\nca_fle = 'x'\n\n[[cameras]]"),
            "mqtt.tls.ca_fle: unknown key; did you mean `ca_file`?",
        ),
        (('id = "cam0"', 'id = "cam0"\nzzz = 1'), "cameras.0.zzz: unknown key; known: "),
    ],
)
def test_unknown_keys_in_every_section(config: Path, edit: tuple[str, str], expected: str) -> None:
    config.write_text(CONFIG.replace(*edit, 1))
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert str(caught.value).startswith(f"{config}: {expected}")


def test_malformed_json_in_a_variable_names_the_variable(config: Path) -> None:
    result = run(config, INSPECTOR__CAMERAS='[{"id":')
    assert result.returncode == EX_CONFIG
    assert one_line(result) == (
        "inspector run: error: INSPECTOR__CAMERAS: not valid JSON (Expecting value at column 8); "
        "a whole section is JSON, or set one key with INSPECTOR__CAMERAS__<KEY>"
    )


def test_a_misspelt_section_in_a_variable_is_refused(config: Path) -> None:
    result = run(config, INSPECTOR__MQQT__PORT="1")
    assert result.returncode == EX_CONFIG
    assert one_line(result) == (
        "inspector run: error: INSPECTOR__MQQT__PORT: unknown section `mqqt`; did you mean "
        "`mqtt`? (variables are INSPECTOR__<SECTION>__<KEY>)"
    )


def test_a_misspelt_key_in_a_variable_suggests_the_key(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INSPECTOR__MQTT__PORTT", "1")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert (
        str(caught.value) == "INSPECTOR__MQTT__PORTT: mqtt.portt: unknown key; did you mean `port`?"
    )


def test_a_camera_key_from_a_variable_sets_that_camera_only(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INSPECTOR__CAMERAS__0__LOOP", "true")
    monkeypatch.setenv("INSPECTOR__CAMERAS__CAM1__REALTIME", "true")
    cam0, cam1 = load_settings(config).cameras
    assert isinstance(cam0, FileSettings) and isinstance(cam1, FileSettings)
    assert (cam0.id, cam0.loop, cam0.realtime) == ("cam0", True, False)
    assert (cam1.id, cam1.loop, cam1.realtime) == ("cam1", False, True)
    assert cam0.source == str(config.parent / "a.mp4")  # the rest still from the file


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "INSPECTOR__CAMERAS__0__LOOP",
            "maybe",
            "INSPECTOR__CAMERAS__0__LOOP: cameras.0.loop: Input should be a valid boolean",
        ),
        (
            "INSPECTOR__CAMERAS__0__LOOPP",
            "true",
            "INSPECTOR__CAMERAS__0__LOOPP: cameras.0.loopp: unknown key; did you mean `loop`?",
        ),
        (
            "INSPECTOR__CAMERAS__5__LOOP",
            "true",
            "INSPECTOR__CAMERAS__5__LOOP: no camera `5` in {config} "
            "(cameras by index or id: 0 (cam0), 1 (cam1))",
        ),
    ],
)
def test_a_bad_camera_variable_blames_the_variable_not_the_file(
    config: Path, variable: str, value: str, expected: str
) -> None:
    result = run(config, **{variable: value})
    assert result.returncode == EX_CONFIG
    line = one_line(result)
    assert line.startswith("inspector run: error: " + expected.format(config=config)), line
    assert str(config) not in line.split(":")[1]


def test_a_camera_key_beside_the_whole_list_is_refused(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INSPECTOR__CAMERAS", '[{"id": "c", "source": "a.mp4"}]')
    monkeypatch.setenv("INSPECTOR__CAMERAS__0__LOOP", "true")
    with pytest.raises(ConfigError, match=r"^INSPECTOR__CAMERAS__0__LOOP: cannot be combined"):
        load_settings(config)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("INSPECTOR__MQTT____PORT", "1", "INSPECTOR__MQTT____PORT: an empty name between two `__`"),
        ("INSPECTOR__LINE", "", "INSPECTOR__LINE: not valid JSON (Expecting value at column 1)"),
        ("INSPECTOR__LINE", "[" * 5000, "INSPECTOR__LINE: not valid JSON (nested too deeply)"),
        ("INSPECTOR__MQTT", "[1]", "INSPECTOR__MQTT: mqtt: Input should be a valid dictionary"),
        ("inspector__mqqt__port", "1", "inspector__mqqt__port: unknown section `mqqt`"),
    ],
)
def test_other_bad_variables_are_one_line_naming_them(
    config: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)


def test_a_config_nested_too_deeply_is_one_line(config: Path) -> None:
    config.write_text(CONFIG + "x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert str(caught.value) == f"{config}: invalid TOML: nested too deeply"
