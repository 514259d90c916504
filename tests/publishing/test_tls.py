"""TLS to the broker with a client certificate and a password, against a real Mosquitto
listener configured that way; certificates made by openssl in the test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures.models import build_color_model
from tests.fixtures.mqtt import Broker
from tests.fixtures.processes import inspector
from tests.fixtures.videos import write_video

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed"),
]

TILE = 32
PASSWORD = "s3cret-line-pass"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(folder: Path) -> None:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", "ca.key", "-out", "ca.crt", cwd=folder)  # fmt: skip
    for name, cn in (("server", "127.0.0.1"), ("client", "line-pc")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=folder)  # fmt: skip
        ext = folder / f"{name}.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1\n" if name == "server" else "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", "-extfile", ext.name,
                cwd=folder)  # fmt: skip


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Broker:
    folder = tmp_path_factory.mktemp("tls")
    make_certificates(folder)
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(folder / "passwd"), "line1", PASSWORD], check=True
    )
    broker = Broker(
        folder,
        listener_options=(
            f"cafile {folder}/ca.crt\ncertfile {folder}/server.crt\nkeyfile {folder}/server.key\n"
            f"require_certificate true\npassword_file {folder}/passwd\n"
        ),
    )
    broker.start()
    yield broker
    broker.stop()


def run_daemon(tmp_path: Path, broker: Broker, password: str) -> subprocess.CompletedProcess[str]:
    video = tmp_path / "line.mp4"
    write_video(video, (np.full((TILE, TILE, 3), 245 if i % 2 else 60, np.uint8) for i in range(6)))
    build_color_model(tmp_path / "m.onnx", size=TILE)
    certs = broker.config.parent
    config = tmp_path / "line.toml"
    config.write_text(
        f'[line]\nid = "tls{uuid.uuid4().hex[:6]}"\n[[cameras]]\nid = "cam0"\nsource = "{video}"\n'
        f'[model]\npath = "m.onnx"\nthreads = 1\n[tiling]\nsize = {TILE}\nstride = {TILE}\n'
        f'[mqtt]\nport = {broker.port}\nusername = "line1"\nconnect_timeout_s = 5\n'
        f'[mqtt.tls]\nca_file = "{certs}/ca.crt"\ncert_file = "{certs}/client.crt"\n'
        f'key_file = "{certs}/client.key"\n'
    )
    # The password comes from the environment, as a unit's EnvironmentFile= would give it.
    env = {**os.environ, "INSPECTOR__MQTT__PASSWORD": password}
    return inspector("run", "--config", str(config), "--json", env=env)


def test_events_go_over_tls_with_a_client_certificate_and_password(
    tmp_path: Path, tls_broker: Broker
) -> None:
    result = run_daemon(tmp_path, tls_broker, PASSWORD)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["events"] == 3  # each acknowledged over TLS
    assert PASSWORD not in result.stderr + result.stdout


def test_a_wrong_password_is_one_clear_line_and_never_logged(
    tmp_path: Path, tls_broker: Broker
) -> None:
    result = run_daemon(tmp_path, tls_broker, "wrong-password")
    assert result.returncode == 78  # a refused password does not heal: no restart loop
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"inspector run: error: cannot connect to MQTT broker 127.0.0.1:{tls_broker.port}"
    )
    assert "wrong-password" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("key", "make", "reason"),
    [
        ("ca_file", lambda folder: folder / "missing-ca.crt", "no such file"),
        ("key_file", lambda folder: folder / "missing.key", "no such file"),
        ("ca_file", lambda folder: folder, "is not a file"),
        ("ca_file", lambda folder: _junk(folder / "junk.crt"), "not a PEM CA certificate"),
        ("cert_file", lambda folder: _junk(folder / "junk.crt"), "not a PEM certificate"),
    ],
)
def test_a_tls_file_that_cannot_be_loaded_is_named_in_one_line(
    tmp_path: Path, tls_broker: Broker, key: str, make: Any, reason: str
) -> None:
    certs = tls_broker.config.parent
    bad = make(tmp_path)
    files = {"ca_file": certs / "ca.crt", "cert_file": certs / "client.crt",
             "key_file": certs / "client.key", key: bad}  # fmt: skip
    config = tmp_path / "line.toml"
    config.write_text(
        f'[line]\nid = "tls"\n[[cameras]]\nid = "cam0"\nsource = "{tmp_path}/none.mp4"\n'
        f'[model]\npath = "{tmp_path}/m.onnx"\n[tiling]\nsize = {TILE}\nstride = {TILE}\n'
        f"[mqtt]\nport = {tls_broker.port}\n[mqtt.tls]\n"
        + "".join(f'{name} = "{path}"\n' for name, path in files.items())
    )
    build_color_model(tmp_path / "m.onnx", size=TILE)
    video = tmp_path / "none.mp4"
    write_video(video, [np.full((TILE, TILE, 3), 60, np.uint8)])
    result = inspector("run", "--config", str(config))
    assert result.returncode == 78, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"mqtt.tls.{key}" in lines[0] and str(bad) in lines[0] and reason in lines[0]


def _junk(path: Path) -> Path:
    path.write_text("this is not a certificate\n")
    return path
