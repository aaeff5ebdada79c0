"""Screenshots of every console page at 1280x800 (desktop) and 800x1280 (tablet).

Starts a console on a fresh temporary data folder, adds two example patients
through the store, then drives headless Debian Chromium through the pages:
patients, a patient, the envelope editor (with a value beyond a hard cap),
the start page (and with Plate none, headset only), the live session and
the results. Writes
``docs/console/<page>-<width>x<height>.png``.

    .venv/bin/python tools/console_screenshots.py [--out docs/console]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SIZES = ((1280, 800), (800, 1280))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/console", help="folder for the PNGs")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.console.conftest import chromium_driver, start_console, stop_console

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        env = {**os.environ, "VRBALANCE_DATA": str(data)}
        for argv in (
            ["patient", "add", "P001", "--name", "Ada M.", "--birth-year", "1951", "--sex", "F",
             "--height-cm", "164", "--mass-kg", "62"],
            ["patient", "add", "P002", "--name", "Ben <b>T.</b>", "--birth-year", "1944",
             "--sex", "M", "--height-cm", "178", "--mass-kg", "81"],
        ):  # fmt: skip
            subprocess.run([sys.executable, "-m", "vrbalance", *argv], env=env, check=False)
        console = start_console(data, "--seconds-scale", "1")
        try:
            d = chromium_driver(Path(tmp) / "profile", *SIZES[0])
            try:
                shoot_all(d, console, out)
            finally:
                d.quit()
        finally:
            stop_console(console)
    return 0


def shoot(d: Any, out: Path, name: str) -> None:
    for w, h in SIZES:
        d.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": False},
        )
        time.sleep(0.8)  # let the layout and the chart settle (pictures only, not a test)
        d.save_screenshot(str(out / f"{name}-{w}x{h}.png"))
    d.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": SIZES[0][0], "height": SIZES[0][1], "deviceScaleFactor": 1, "mobile": False},
    )


def wait(d: Any, pred: Any, timeout_s: float = 90.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(d, timeout_s, poll_frequency=0.1).until(pred)


def body(d: Any) -> str:
    return d.find_element("tag name", "body").text


def choose(d: Any, select_id: str, option: str) -> None:
    """Pick ``option`` (its label) in the Quasar select ``select_id``."""
    d.find_element("id", select_id).click()
    xpath = (
        "//div[contains(@class, 'q-menu')]//div[contains(@class, 'q-item')]"
        f"[.//span[text()={option!r}]]"
    )
    wait(d, lambda d: d.find_element("xpath", xpath).is_displayed())
    d.find_element("xpath", xpath).click()
    wait(d, lambda d: option in d.find_element("id", select_id).text)


def shoot_all(d: Any, console: Any, out: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    d.get(console.url)
    wait(d, lambda d: "Add a patient" in body(d))
    shoot(d, out, "patients")
    d.find_element("link text", "P001").click()
    wait(d, lambda d: d.find_elements("id", "save-patient"))
    patient_url = d.current_url
    shoot(d, out, "patient")
    d.find_element("id", "go-envelope").click()
    wait(d, lambda d: d.find_elements("id", "env-visual-max_surround_tilt_deg"))
    el = d.find_element("id", "env-visual-max_surround_tilt_deg")
    el.send_keys(Keys.CONTROL, "a")
    el.send_keys("12")
    wait(d, lambda d: "hard cap" in d.find_element("id", "envelope-error").text)
    shoot(d, out, "envelope")
    d.get(patient_url)
    wait(d, lambda d: d.find_elements("id", "go-start"))
    d.find_element("id", "go-start").click()
    wait(d, lambda d: "Stand still" in body(d))
    shoot(d, out, "start")
    start_url = d.current_url
    # Plate none (headset only) with the default protocol: the refusal run would give.
    choose(d, "device", "none (headset only)")
    wait(d, lambda d: d.find_elements("id", "no-plate-refusal"))
    shoot(d, out, "start-headset-only")
    d.get(start_url)
    wait(d, lambda d: "Stand still" in body(d))
    d.find_element("id", "start-session").click()
    wait(d, lambda d: "Trial 1 ready" in d.find_element("id", "live-gate").text)
    d.find_element("id", "ctl-start").click()
    wait(d, lambda d: "CoP (" in d.find_element("id", "plot-info").text)
    time.sleep(3.0)  # a few seconds of trail
    shoot(d, out, "live")
    wait(d, lambda d: d.find_element("id", "live-status").text == "Session ended", 120.0)
    d.find_element("id", "live-results").click()
    wait(d, lambda d: "completed" in d.find_element("id", "result-trials").text)
    time.sleep(2.0)  # the report iframe renders its figures
    shoot(d, out, "results")


if __name__ == "__main__":
    raise SystemExit(main())
