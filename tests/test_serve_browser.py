"""The `qaframe serve` web page in a real headless Chromium (Debian's, driven by Selenium).

Loads the page from a live server with a tiny random KcBERT span model, fills a passage from an
example, types a question, submits, waits for the highlighted answer, checks it is the API's
answer span, and saves a screenshot (to $QAFRAME_ARTIFACTS, else the test's tmp folder).
Without /usr/bin/chromium the test is skipped, unless CI is set: there the browser must exist
(install: apt-get install -y chromium chromium-driver fonts-nanum).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip("Chromium is not installed (apt-get install -y chromium chromium-driver)", allow_module_level=True)


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    """The app around a real Predictor, served by uvicorn in a background thread; yields its base URL."""
    import torch
    import uvicorn
    from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer

    from qaframe.predictor import Predictor
    from qaframe.serving import create_app

    folder = tmp_path_factory.mktemp("tiny-span-model")
    torch.manual_seed(0)
    AutoModelForQuestionAnswering.from_config(AutoConfig.from_pretrained(tiny_model_dir)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(Predictor.load(folder)), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server thread did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=15)


@pytest.fixture
def browser(tmp_path, monkeypatch):
    """Headless Debian Chromium through the system chromedriver, with a fresh profile and a home folder in tmp_path."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for needed in (CHROMIUM, CHROMEDRIVER):
        if not needed.exists():
            pytest.fail(f"{needed} is missing: apt-get install -y chromium chromium-driver fonts-nanum")
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not try to download anything
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1100,1200", "--lang=ko-KR",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    home = tmp_path / "home"  # Chromium writes ~/.config/chromium and ~/.cache/dconf whatever --user-data-dir says
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache")}
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER), env=env), options=options)
    assert (home / ".config" / "chromium").is_dir()  # the browser took this home, not the real one
    yield driver
    driver.quit()


@pytest.fixture
def artifacts(tmp_path) -> Path:
    """Where screenshots go: $QAFRAME_ARTIFACTS when set, else this test's tmp folder."""
    folder = Path(os.environ.get("QAFRAME_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_page_highlights_the_api_answer(server, browser, artifacts):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.get(server + "/")
    model = httpx.get(server + "/health", timeout=10).json()["model"]
    wait.until(ready.text_to_be_present_in_element((By.ID, "model"), model))

    browser.find_element(By.XPATH, "//button[@class='example' and text()='제주도']").click()
    context = browser.find_element(By.ID, "context").get_property("value")
    assert "한라산" in context
    question_box = browser.find_element(By.ID, "question")
    question_box.clear()
    question = "한라산은 얼마나 높은 산인가?"
    question_box.send_keys(question)
    browser.find_element(By.ID, "submit").click()
    mark = wait.until(ready.visibility_of_element_located((By.CSS_SELECTOR, "#passage mark")))

    expected = httpx.post(server + "/predict", json={"question": question, "context": context, "top_k": 3}, timeout=30).json()
    best = expected["answers"][0]
    assert mark.get_property("textContent") == context[best["start"] : best["end"]] == best["text"]
    assert browser.find_element(By.ID, "passage").get_property("textContent") == context
    assert browser.find_element(By.ID, "answer-text").text == best["text"]
    assert browser.find_element(By.ID, "score").text == f"{best['score'] * 100:.1f}%"
    assert "ms" in browser.find_element(By.ID, "elapsed").text
    shot = artifacts / "serve_page.png"
    assert browser.save_screenshot(str(shot))
    print(f"\nscreenshot: {shot}")

    question_box.clear()
    browser.find_element(By.ID, "submit").click()
    assert "질문" in wait.until(ready.visibility_of_element_located((By.ID, "error"))).text

    problems = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert problems == []
