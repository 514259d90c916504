"""The operator's page in a real headless Chromium (Debian's, driven by its chromedriver)
against the daemon running a recording and a network camera through a real Mosquitto: the
page shows the newest event with its crop, the counts the broker delivered, a failing camera
reconnecting; a screenshot is kept in tests/artifacts/. With a token, the browser gets in
through ?token= and a request without it gets 401."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.fixtures import processes
from tests.fixtures.cameras import MjpegCamera
from tests.fixtures.models import build_color_model
from tests.fixtures.mqtt import Broker
from tests.fixtures.net import free_port, http_get
from tests.fixtures.processes import REPO, start_daemon
from tests.fixtures.videos import tiles, write_video

pytestmark = pytest.mark.e2e

TILE = 32  # test_camera_faults' MJPEG camera sends one 32 px tile
COLS, ROWS = 4, 2
FRAMES = 45
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = next(
    (p for p in (shutil.which("chromium"), "/usr/bin/chromium") if p and Path(p).exists()), None
)
CHROMEDRIVER = next(
    (p for p in (shutil.which("chromedriver"), "/usr/bin/chromedriver") if p and Path(p).exists()),
    None,
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Debian's chromium and chromium-driver are not installed "
    "(apt-get install chromium chromium-driver; scripts/test.sh installs them)",
)


def write_line(path: Path) -> None:
    """A crack tile walking the grid on every third frame; the rest is ok."""

    def frame(i: int) -> np.ndarray:
        step = i // 3
        crack = [(step % COLS, step // COLS % ROWS, 245)] if i % 3 == 0 else []
        return tiles(COLS, ROWS, TILE, 60, crack)

    write_video(path, map(frame, range(FRAMES)))


def start_line(tmp_path: Path, config_text: str) -> subprocess.Popen[str]:
    write_line(tmp_path / "line.mp4")
    build_color_model(tmp_path / "m.onnx", size=TILE)
    config = tmp_path / "line.toml"
    config.write_text(config_text)
    return start_daemon(config)


def common_config(line: str, broker: Broker, ui: str, camera: str = "") -> str:
    return (
        f'[line]\nid = "{line}"\n'
        f'[[cameras]]\nid = "cam0"\nsource = "line.mp4"\nrealtime = true\nfps = 15\n{camera}'
        f'[model]\npath = "m.onnx"\nthreads = 1\n[tiling]\nsize = {TILE}\nstride = {TILE}\n'
        f"[batching]\nmax_wait_ms = 5\n[mqtt]\nport = {broker.port}\nstats_interval_s = 1\n"
        f'[outbox]\npath = "outbox.sqlite"\n[logging]\nformat = "json"\n'
        f'[evidence]\nenabled = true\npath = "evidence"\n[ui]\nenabled = true\n{ui}'
    )


def status_of(url: str, headers: dict[str, str] | None = None) -> int:
    return http_get(url, headers)[0]


# "Not yet": the server is not up, or the page has not drawn the element (or the value) yet.
wait_until = partial(
    processes.wait_until, ignore=(OSError, ValueError, KeyError, WebDriverException)
)


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    assert CHROMIUM is not None and CHROMEDRIVER is not None
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1366,768"):  # fmt: skip
        options.add_argument(flag)
    # The Debian driver, named: selenium-manager would try to download one, and cannot here.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def text(driver: webdriver.Chrome, css: str) -> str:
    """The element's text, read in one script (the page redraws between two driver calls)."""
    found = driver.execute_script(
        "const n = document.querySelector(arguments[0]); return n && n.textContent", css
    )
    if found is None:
        raise ValueError(f"no element {css} on the page")
    return str(found).strip()


def stop(daemon: subprocess.Popen[str]) -> str:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
    try:
        _, err = daemon.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        daemon.kill()
        _, err = daemon.communicate()
    print(err[-3000:])  # shown when the test fails
    return err


@needs_chromium
def test_the_page_shows_the_line_live(
    tmp_path: Path, mosquitto: Broker, mqtt_messages: Any, browser: webdriver.Chrome
) -> None:
    line, port = f"ui{uuid.uuid4().hex[:6]}", free_port()
    camera = MjpegCamera()
    delivered = mqtt_messages(f"line/{line}/defects")
    daemon = start_line(
        tmp_path,
        common_config(
            line, mosquitto, f"port = {port}\n",
            f'[[cameras]]\nid = "cam1"\nsource = "{camera.url}"\nopen_timeout_s = 1\n'
            "read_timeout_s = 1\n",
        ),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: status_of(base + "/api/status") == 200, 60, "the page's server")
        browser.get(base + "/")
        wait_until(lambda: text(browser, "#connection") == "live", 20, "the live stream")
        wait_until(lambda: text(browser, "#camera-cam1 .state") == "ok", 30, "cam1 up")

        # While the recording plays: the broker's newest event is on the page within seconds.
        first = wait_until(lambda: delivered.messages, 30, "a first event")
        newest = json.loads(first[-1].payload)["frame_id"]
        wait_until(
            lambda: int(text(browser, "#newest-frame-id") or -1) >= newest, 3,
            f"frame {newest} on the page",
        )  # fmt: skip

        # The recording has ended: the page's newest event and counts are the broker's.
        wait_until(lambda: text(browser, "#camera-cam0 .state") == "ended", 30, "cam0 ended")
        events = [json.loads(m.payload) for m in delivered.wait_for(FRAMES // 3, timeout=15)]
        assert len(events) == FRAMES // 3
        last = max(events, key=lambda e: e["frame_id"])
        wait_until(
            lambda: text(browser, "#newest-frame-id") == str(last["frame_id"]), 3,
            "the newest event's frame id",
        )  # fmt: skip
        item = browser.find_element(By.CSS_SELECTOR, "#events li")
        assert item.get_attribute("data-frame-id") == str(last["frame_id"])
        crop = item.find_element(By.CSS_SELECTOR, "img.crop")
        wait_until(
            lambda: browser.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth", crop
            ),
            5,
            "the crop picture",
        )  # fmt: skip
        assert str(crop.get_attribute("src")).split("?")[0].endswith(last["evidence"]["crops"][0])
        wait_until(
            lambda: browser.execute_script(
                "const i = document.querySelector('#camera-cam0 img.frame');"
                "return i.complete && i.naturalWidth"
            ),
            5,
            "cam0's picture",
        )  # fmt: skip
        assert text(browser, "#camera-cam0 .frame-id") == str(FRAMES - 1)
        wait_until(lambda: text(browser, "#count-nok") == str(len(events)), 3, "NOK count")
        classes = Counter(d["class"] for e in events for d in e["defects"])
        for name, count in classes.items():
            assert text(browser, f'#count-classes li[data-class="{name}"] b') == str(count)
        assert int(text(browser, "#count-ok")) >= FRAMES - len(events)
        assert text(browser, "#model-name") == "demo-color"
        assert text(browser, "#broker-state") == "connected"
        assert text(browser, "#outbox-state") == "ok"
        wait_until(lambda: float(text(browser, "#fps")) >= 0, 5, "the frame rate")
        # cam0 (a recording) is lossless; a loaded machine may drop cam1's live frames.
        assert text(browser, "#latency-p99") != "-" and int(text(browser, "#dropped")) >= 0

        # cam1 fails: its frames stop, then it refuses connections.
        camera.mode = "stall"
        wait_until(
            lambda: text(browser, "#camera-cam1 .state") == "reconnecting", 15, "reconnecting"
        )
        camera.mode = "down"
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "ui-page.png"
        assert browser.save_screenshot(str(shot))
        picture = cv2.imread(str(shot))
        assert picture is not None and picture.shape[1] >= 1300
    finally:
        err = stop(daemon)
        camera.close()
    assert daemon.returncode == 0, err[-3000:]


@needs_chromium
def test_with_a_token_the_page_opens_only_with_it(
    tmp_path: Path, mosquitto: Broker, browser: webdriver.Chrome
) -> None:
    line, port, token = f"uit{uuid.uuid4().hex[:6]}", free_port(), "line-1-operators"
    daemon = start_line(
        tmp_path,
        common_config(line, mosquitto, f'port = {port}\nhost = "0.0.0.0"\ntoken = "{token}"\n')
        .replace("fps = 15\n", "fps = 15\nloop = true\n"),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        status = wait_until(lambda: status_of(base + "/api/status"), 60, "the page's server")
        assert status == 401
        for path in ("/", "/api/events?limit=5", "/evidence/x.jpg", "/api/frame/cam0"):
            assert status_of(base + path) == 401, path
        assert status_of(base + "/api/status", {"Authorization": "Bearer wrong-one"}) == 401
        assert status_of(base + "/api/status", {"Authorization": f"Bearer {token}"}) == 200
        browser.get(f"{base}/?token={token}")  # the cookie carries it from here on
        wait_until(lambda: text(browser, "#line") == line, 20, "the page with its line")
        wait_until(lambda: text(browser, "#connection") == "live", 20, "the live stream")
        wait_until(lambda: text(browser, "#newest-frame-id") != "-", 20, "an event")
    finally:
        err = stop(daemon)
    assert daemon.returncode == 0, err[-3000:]
