"""The playground page in a real browser: Debian's headless chromium, driven by selenium.

Against a real balancer (one worker on the tiny random checkpoint, auth on) the page loads with
no console error, lists the voices once it has a key, clones a voice from an uploaded clip, and
plays a sentence while it streams: the page's own counters (``window.playground``) show samples
handed to Web Audio and a non-zero level measured by an analyser between the sources and the
speakers, and the first-audio time, real-time factor and alignment are on the page. A wrong key
shows the server's message. Through a real broker in front of a second balancer (broker mode)
the same page is served and plays.

A screenshot of the page after a stream is saved as ``playground.png`` in
``$XTTS_BROWSER_ARTIFACTS`` (the test's temporary folder when unset; ``.ci/run`` sets
``out/browser``). Without chromium or chromedriver the tests fail: CI must not pass on a skip.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "balancer"))
sys.path.insert(0, str(ROOT / "broker"))
from balancer_server import (  # noqa: E402
    CLIP_VOICE,
    KEY,
    Server,
    base_config,
    join_broker,
    start_server,
    write_model_files,
)
from broker_servers import CLIENT_KEY, SECRET, BrokerThread, eventually  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

#: Flags that run chromium here: no sandbox (root), no GPU, no network of its own.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1000,1200",
)
TEXT = "Hello there. This sentence is streamed."
WAIT_S = 90.0


def _executable(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: apt-get install -y chromium chromium-driver "
            "(.ci/run's browser step does it)"
        )
    return path


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("XTTS_BROWSER_ARTIFACTS") or tmp_path_factory.mktemp("browser"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def balancer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A standalone balancer with auth on: one worker on the tiny checkpoint."""
    model_dir, voices = write_model_files(tmp_path_factory)
    config = base_config(model_dir, voices)
    config["model"]["max_new_codes"] = 24  # about a second of audio per sentence
    config["limits"]["max_message_bytes"] = 65536
    server = start_server(tmp_path_factory.mktemp("playground-balancer"), config)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker's URL, with a balancer in broker mode registered and healthy behind it."""
    model_dir, voices = write_model_files(tmp_path_factory)
    thread = BrokerThread(cluster={"heartbeat_interval_s": 1.0, "heartbeat_ttl_s": 2.5})
    thread.start("deep")
    config = base_config(model_dir, voices)
    directory = tmp_path_factory.mktemp("playground-broker")
    join_broker(config, "behind-broker", thread.url, thread.port, SECRET)
    server = start_server(directory, config)
    try:
        server.wait_ready()
        eventually(lambda: _page_served(thread.url), "the broker to serve the page")
        yield thread.url
    finally:
        server.stop()
        thread.stop()


def _page_served(url: str) -> bool:
    import httpx

    return httpx.get(url + "/playground/", timeout=5).status_code == 200


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = _executable("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(_executable("chromedriver")))
    try:
        yield browser
    finally:
        browser.quit()


# --- helpers -------------------------------------------------------------------------------------


def open_page(driver: WebDriver, base_url: str) -> None:
    driver.get(base_url + "/")  # redirects to /playground/
    WebDriverWait(driver, WAIT_S).until(
        lambda d: d.execute_script("return document.body.dataset.ready") == "true"
    )
    assert driver.current_url == base_url + "/playground/"


def console_errors(driver: WebDriver) -> list[dict[str, Any]]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def stats(driver: WebDriver) -> dict[str, Any]:
    result: dict[str, Any] = driver.execute_script("return {...window.playground}")
    return result


def text_of(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def enter_key(driver: WebDriver, key: str) -> None:
    field = driver.find_element(By.ID, "key")
    field.clear()
    field.send_keys(key)
    driver.find_element(By.ID, "text").click()  # leaving the field fires its change event


def options(driver: WebDriver, select_id: str) -> list[str]:
    """The values of a select's options, read in one script (the page may be refilling it)."""
    script = "return [...document.getElementById(arguments[0]).options].map(o => o.value)"
    values: list[str] = driver.execute_script(script, select_id)
    return values


def selected(driver: WebDriver, select_id: str) -> tuple[str, str]:
    """The selected option's value and text."""
    script = "const o = document.getElementById(arguments[0]).selectedOptions[0]; return [o.value, o.text]"
    value, text = driver.execute_script(script, select_id)
    return str(value), str(text)


def choose(driver: WebDriver, select_id: str, value: str) -> None:
    driver.execute_script(
        "document.getElementById(arguments[0]).value = arguments[1]", select_id, value
    )
    assert selected(driver, select_id)[0] == value


def wait_for_voice(driver: WebDriver, voice_id: str) -> None:
    WebDriverWait(driver, WAIT_S).until(lambda d: voice_id in options(d, "voice"))


def speak(driver: WebDriver, text: str | None = None) -> dict[str, Any]:
    """Click Speak and wait until the stream has ended and its audio has played."""
    if text is not None:
        area = driver.find_element(By.ID, "text")
        area.clear()
        area.send_keys(text)
    driver.find_element(By.ID, "speak").click()
    WebDriverWait(driver, WAIT_S).until(
        lambda d: d.execute_script("return window.playground.state") in ("done", "error")
    )
    return stats(driver)


def assert_played(driver: WebDriver, result: dict[str, Any]) -> None:
    assert result["state"] == "done", result["error"]
    assert result["error"] is None
    assert result["chunks"] >= 2  # streamed: several audio messages, each scheduled on arrival
    assert result["samplesScheduled"] >= 24000 * 0.5  # at least half a second at 24 kHz
    assert result["peak"] > 0.01  # the analyser after the sources measured the audio playing
    assert 0 < result["firstAudioMs"] < WAIT_S * 1000
    assert result["rtf"] > 0
    assert re.fullmatch(r"\d+ ms", text_of(driver, "first-audio"))
    assert re.fullmatch(r"\d+\.\d\d", text_of(driver, "rtf"))
    assert text_of(driver, "chunks") == str(result["chunks"])
    # Alignment: every character of the text was placed on the audio clock and has been spoken.
    spans = driver.find_elements(By.CSS_SELECTOR, "#transcript span")
    assert "".join(s.text or " " for s in spans).split() == TEXT.split()
    assert result["spokenChars"] == result["alignedChars"] == len(spans)
    assert all(s.get_attribute("class") == "spoken" for s in spans)
    # ... each at its time on the audio clock, not when its message arrived (a frame or so later).
    assert 0 <= result["highlightDelay"]["min"] <= result["highlightDelay"]["max"] < 2.0


# --- tests ---------------------------------------------------------------------------------------


def test_the_page_loads_without_console_errors_and_asks_for_a_key(
    driver: WebDriver, balancer: Server
) -> None:
    open_page(driver, balancer.http_url)
    assert driver.title == "xtts-stream playground"
    assert "needs an API key" in text_of(driver, "status")
    assert console_errors(driver) == []
    enter_key(driver, KEY)
    wait_for_voice(driver, CLIP_VOICE)
    assert "en" in options(driver, "language")
    assert console_errors(driver) == []


def test_a_sentence_plays_while_it_streams(
    driver: WebDriver, balancer: Server, artifacts: Path
) -> None:
    open_page(driver, balancer.http_url)
    enter_key(driver, KEY)
    wait_for_voice(driver, CLIP_VOICE)
    choose(driver, "voice", CLIP_VOICE)
    result = speak(driver, TEXT)
    assert_played(driver, result)
    assert console_errors(driver) == []
    driver.find_element(By.TAG_NAME, "body").screenshot(str(artifacts / "playground.png"))


def test_a_voice_cloned_from_an_uploaded_clip_is_selected_and_speaks(
    driver: WebDriver, balancer: Server, tmp_path: Path
) -> None:
    t = np.arange(22050 * 2) / 22050
    clip = tmp_path / "my-clip.wav"
    soundfile.write(clip, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 22050)
    open_page(driver, balancer.http_url)
    enter_key(driver, KEY)
    wait_for_voice(driver, CLIP_VOICE)
    driver.find_element(By.CSS_SELECTOR, "#clone summary").click()
    driver.find_element(By.ID, "clone-name").send_keys("Browser clone")
    driver.find_element(By.ID, "clone-file").send_keys(str(clip))
    driver.find_element(By.ID, "clone-button").click()
    WebDriverWait(driver, WAIT_S).until(lambda d: "Browser clone" in selected(d, "voice")[1])
    voice_id = selected(driver, "voice")[0]
    assert voice_id not in ("default", CLIP_VOICE)
    assert_played(driver, speak(driver, TEXT))


def test_a_bad_key_shows_the_servers_message(driver: WebDriver, balancer: Server) -> None:
    open_page(driver, balancer.http_url)
    enter_key(driver, "not-the-key")
    WebDriverWait(driver, WAIT_S).until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert text_of(driver, "error") == "Could not list the voices: Invalid API key."
    result = speak(driver, TEXT)
    assert result["state"] == "error"
    assert text_of(driver, "error") == "Invalid API key. (invalid_api_key)"
    assert result["samplesScheduled"] == 0


def test_without_a_key_the_page_says_so_before_connecting(
    driver: WebDriver, balancer: Server
) -> None:
    open_page(driver, balancer.http_url)
    driver.find_element(By.ID, "speak").click()
    assert text_of(driver, "error") == "This server needs an API key: enter it above."
    assert stats(driver)["state"] == "idle"
    assert console_errors(driver) == []


def test_the_page_plays_through_the_broker(driver: WebDriver, broker: str) -> None:
    open_page(driver, broker)
    assert "needs an API key" in text_of(driver, "status")
    enter_key(driver, CLIENT_KEY)
    wait_for_voice(driver, CLIP_VOICE)
    choose(driver, "voice", CLIP_VOICE)
    assert_played(driver, speak(driver, TEXT))
    assert console_errors(driver) == []
