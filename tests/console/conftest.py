"""A real console process on loopback, and headless Chromium from Debian's packages."""

from __future__ import annotations

import os
import queue
import shutil
import signal
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


CRASHING_CONSOLE = """
import sys, time
from pathlib import Path
from vrbalance.console.stations import SessionRequest, Stations

stations = Stations(runtime_dir=Path(sys.argv[1]) if sys.argv[1] else None)
station = stations.start(SessionRequest(sys.argv[2], sys.argv[3], output="none"))
deadline = time.monotonic() + 120.0
while not station.snapshot()["gate"].get("waiting"):
    if time.monotonic() > deadline or station.proc.poll() is not None:
        sys.exit(3)
    time.sleep(0.02)
print(station.key, station.proc.pid, flush=True)
sys.stdin.read()  # until it is killed, like a console that crashes
"""


class CrashingConsole:
    """A console (a real :class:`Stations` in its own process) that starts a session and dies.

    ``runtime_dir`` None: the console's default runtime folder in this
    environment (``$VRBALANCE_DATA/console`` when the test sets the data folder).
    """

    def __init__(self, runtime_dir: Path | None) -> None:
        self.runtime_dir = runtime_dir
        self.proc: subprocess.Popen[str] | None = None
        self.session: tuple[str, int] | None = None

    def start_session_and_crash(self, patient_id: str, protocol: str) -> tuple[str, int]:
        """Start a simulated session, wait until it waits at its first gate, SIGKILL the console.

        Returns
        -------
        (station key, session process id)
        """
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CRASHING_CONSOLE, str(self.runtime_dir or ""), patient_id,
             protocol],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the helper's own 120 s deadline bounds it
        assert line, f"the crashing console's session never reached its gate ({self.proc.poll()})"
        key, pid = line.split()
        self.session = (key, int(pid))
        self.proc.kill()  # the console crashes; its session carries on
        self.proc.wait(timeout=30)
        return self.session

    def cleanup(self) -> None:
        """Kill what is left (the console, the session if a test failed before its end)."""
        from vrbalance.console.stations import session_process_alive

        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.session is not None and session_process_alive(self.session[1], self.session[0]):
            os.kill(self.session[1], signal.SIGKILL)
