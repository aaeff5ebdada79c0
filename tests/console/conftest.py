"""A real console process on loopback, and headless Chromium from Debian's packages."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@dataclass(frozen=True)
class ConsoleProcess:
    url: str
    base: str
    token: str
    data: Path
    proc: subprocess.Popen[str]


def start_console(data: Path, *extra: str) -> ConsoleProcess:
    """Start ``vrbalance console --port 0`` and read its one ``console:`` line (deadline)."""
    data.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "VRBALANCE_DATA": str(data)}
    env.pop("VRBALANCE_DB", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "vrbalance", "console", "--no-browser", "--port", "0", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()
    assert proc.stdout is not None
    out = proc.stdout

    def pump() -> None:
        for line in out:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 60.0
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if line.startswith("console: "):
            url = line.split(" ", 1)[1].strip()
            base, token = url.split("/?token=")
            return ConsoleProcess(url, base, token, data, proc)
    proc.kill()
    raise AssertionError("the console printed no URL:\n" + "".join(seen))


def stop_console(console: ConsoleProcess) -> None:
    console.proc.terminate()
    try:
        console.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        console.proc.kill()
        console.proc.wait()


@pytest.fixture(scope="session")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    c = start_console(tmp_path_factory.mktemp("console") / "data", "--seconds-scale", "1")
    try:
        yield c
    finally:
        stop_console(c)


@pytest.fixture
def make_driver(tmp_path: Path) -> Iterator[Any]:
    """``make_driver(width, height)``: a fresh Chromium (own profile), quit after the test."""
    drivers: list[Any] = []

    def make(width: int = 1280, height: int = 800) -> Any:
        d = chromium_driver(tmp_path / f"profile{len(drivers)}", width, height)
        drivers.append(d)
        return d

    try:
        yield make
    finally:
        for d in drivers:
            d.quit()


def chromium_driver(user_data: Path, width: int = 1280, height: int = 800) -> Any:
    """Headless Chromium from Debian's packages through Debian's chromedriver (no downloads)."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip(
            f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}); "
            "install them with apt-get (see the README's test command)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data}")
    options.add_argument(f"--window-size={width},{height}")
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
