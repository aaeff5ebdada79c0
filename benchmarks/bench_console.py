"""Benchmark the clinician console: click -> applied tick, and the loop with and without it.

Usage::

    python benchmarks/bench_console.py            # ~8 min: 125 clicks, 3+3 loop runs
    python benchmarks/bench_console.py --quick    # ~2 min smoke run

Needs Debian's ``chromium`` and ``chromium-driver`` (the console is driven by
headless Chromium, as a therapist's browser would drive it).

**Click -> applied tick.** A real console process (``vrbalance console``) and
a real session process it started (``vrbalance run --simulate --offscreen
--console-channel``, protocol ``park_walk``: 5 trials). In each trial the
benchmark clicks Pause and Resume ``--pairs`` times, waiting for the page to
show each applied, then clicks EMERGENCY STOP (and Reset, Start for the next
trial). The time of each click is ``time.perf_counter()`` just before
Selenium's click (CLOCK_MONOTONIC, the session's clock too); the applied tick
is the ``t_s`` of the operator event the balance loop recorded when it applied
the command (a tick's deadline). The path is browser -> websocket -> NiceGUI
handler -> Unix socket -> the session's reader thread -> ``OperatorControls``
-> the next tick's ``due()``: identical for every command, so pauses and
resumes add samples to the emergency stops. "+ lateness" adds the trial's
worst tick lateness (the loop's own statistic): an upper bound on when the
tick actually ran.

**The loop with and without a console.** In the same run, alternately: the
baseline trial from the command line with no console, then the same trial
started from the console with its live page open in the browser (the channel
publishing at 30 Hz, the page refreshing at 20 Hz). The balance loop's own
statistics from each trial's ``trial_end`` event: period error p99, lateness
p99, skipped deadlines, overruns.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def body(d: Any) -> str:
    return d.find_element("tag name", "body").text


def wait(d: Any, pred: Any, timeout_s: float = 120.0, poll_s: float = 0.02) -> Any:
    """Poll the page (each poll is a WebDriver round trip: CPU the therapist's browser
    would not spend, so long waits poll slowly)."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(
            d,
            timeout_s,
            poll_frequency=poll_s,
            ignored_exceptions=(StaleElementReferenceException,),
        ).until(pred)
    except TimeoutException:
        print(f"timed out after {timeout_s} s; the page says:\n{body(d)}", file=sys.stderr)
        raise


def text_of(d: Any, element_id: str) -> str:
    found = d.find_elements("id", element_id)
    return found[0].text if found else ""


#: Records each click's time in the page (capture phase, before NiceGUI's handler).
CLICK_SPY = """
if (!window.__clicks) {
  window.__clicks = [];
  document.addEventListener('click', (e) => {
    const b = e.target.closest('button');
    if (b && b.id) window.__clicks.push([b.id, performance.timeOrigin + performance.now()]);
  }, true);
}
"""


def click(d: Any, element_id: str) -> None:
    """Click a button or link once it is there and enabled."""
    wait(d, lambda d: d.find_element("id", element_id).is_enabled())
    d.find_element("id", element_id).click()


def timed_click(d: Any, element_id: str) -> float:
    """Click; returns the browser's own time of the click event on the monotonic clock."""
    el = wait(d, lambda d: d.find_element("id", element_id))
    wait(d, lambda d: d.find_element("id", element_id).is_enabled())
    d.execute_script(CLICK_SPY)
    n = d.execute_script("return window.__clicks.length")
    el.click()
    stamp = wait(d, lambda d: d.execute_script(f"return (window.__clicks || [])[{n}]"))
    # The page's clock is the wall clock (ms): move it onto CLOCK_MONOTONIC, the session's.
    offset_s = time.time() - time.perf_counter()
    return float(stamp[1]) / 1000.0 - offset_s


def events_of(folder: Path) -> list[dict[str, str]]:
    from vrbalance.sessions.recorder import read_rows

    return read_rows(folder / "events.csv")


def trial_ends(folder: Path) -> list[dict[str, Any]]:
    import json

    return [
        json.loads(e["values_json"] or "{}") for e in events_of(folder) if e["kind"] == "trial_end"
    ]


def start_from_console(d: Any, patient_url: str, protocol: str = "") -> None:
    """Open the start page, pick ``protocol`` (its title's start) and start the session."""
    d.get(patient_url)
    click(d, "go-start")
    wait(d, lambda d: "Stand still" in body(d))
    if protocol:
        click(d, "protocol")
        xpath = f"//div[contains(@class, 'q-item')]//span[starts-with(text(), '{protocol}')]"
        wait(d, lambda d: d.find_elements("xpath", xpath))
        d.find_element("xpath", xpath).click()
        wait(d, lambda d: "Keep your balance" in body(d))
    click(d, "start-session")
    wait(d, lambda d: "/station/" in d.current_url)


def newest_session(data: Path, patient: str) -> Path:
    from vrbalance.sessions.store import Store

    with Store(data / "vrbalance.sqlite3") as store:
        return Path(store.sessions(patient)[-1]["folder"])


def bench_clicks(d: Any, patient_url: str, data: Path, pairs: int, trials: int) -> None:
    start_from_console(d, patient_url, "Park walk")
    clicks: list[tuple[str, float]] = []
    for trial in range(trials):
        print(f"  trial {trial + 1}: waiting for its start gate", file=sys.stderr, flush=True)
        wait(d, lambda d, n=trial: f"Trial {n + 1} ready" in text_of(d, "live-gate"), 180.0)
        if trial:
            click(d, "ctl-reset")  # the stop holds the next trial until a reset
        click(d, "ctl-start")
        wait(  # this trial's ticks, streaming
            d,
            lambda d, n=trial: (
                text_of(d, "live-trial").startswith(f"Trial {n + 1}:")
                and "Connecting" not in text_of(d, "live-banner")
            ),
        )
        for _ in range(pairs):
            clicks.append(("pause", timed_click(d, "ctl-pause")))
            wait(d, lambda d: "(paused)" in text_of(d, "live-banner"))
            clicks.append(("resume", timed_click(d, "ctl-resume")))
            wait(d, lambda d: "(paused)" not in text_of(d, "live-banner"))
        clicks.append(("emergency_stop", timed_click(d, "ctl-emergency-stop")))
        wait(d, lambda d: "emergency stop" in text_of(d, "live-events"))
    if trials < 5:  # end the session at the next gate: reset, end session, start
        wait(d, lambda d: f"Trial {trials + 1} ready" in text_of(d, "live-gate"), 180.0)
        click(d, "ctl-reset")
        click(d, "ctl-stop")
        click(d, "ctl-start")
    wait(d, lambda d: text_of(d, "live-status") == "Session ended", 180.0)
    folder = newest_session(data, "P1")
    applied = [
        (e["kind"], float(e["t_s"]), int(e["trial"]))
        for e in events_of(folder)
        if e["source"] == "operator" and e["kind"] in ("pause", "resume", "emergency_stop")
    ]
    if [k for k, _ in clicks] != [k for k, _t, _n in applied]:
        raise SystemExit(f"clicks and recorded commands differ: {clicks} vs {applied}")
    late = {i: v.get("lateness_max_s") or 0.0 for i, v in enumerate(trial_ends(folder))}
    rows: dict[str, list[tuple[float, float]]] = {"all": [], "emergency_stop": []}
    for (kind, t_click), (_k, t_applied, trial) in zip(clicks, applied, strict=True):
        lat = t_applied - t_click
        sample = (lat, lat + late.get(trial, 0.0))
        rows["all"].append(sample)
        if kind == "emergency_stop":
            rows["emergency_stop"].append(sample)
    print("\n**Click -> applied tick** (browser click to the balance-loop tick that applied it)\n")
    print("| commands | n | median | p99 | max | p99 + lateness |")
    print("|---|---|---|---|---|---|")
    for name, samples in rows.items():
        lat = [s[0] * 1e3 for s in samples]
        up = [s[1] * 1e3 for s in samples]
        print(
            f"| {name} | {len(lat)} | {statistics.median(lat):.1f} ms | "
            f"{percentile(lat, 99):.1f} ms | {max(lat):.1f} ms | {percentile(up, 99):.1f} ms |"
        )


def bench_channel(data: Path, pairs: int, trials: int) -> None:
    """The channel alone: console-side send -> the tick that applied it (no browser)."""
    from vrbalance.console.channel import ChannelClient

    msgs: list[dict[str, Any]] = []

    def until(pred: Any, timeout_s: float = 180.0, since: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        seen = since
        while time.monotonic() < deadline:
            new = msgs[seen:]
            seen += len(new)
            for m in new:
                if pred(m):
                    return m
            time.sleep(0.002)
        raise SystemExit("the channel benchmark timed out")

    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o700)
        sock = Path(folder) / "s.sock"
        proc = subprocess.Popen(
            [sys.executable, "-m", "vrbalance", "run", "--patient", "P1", "--protocol",
             "park_walk", "--simulate", "--offscreen", "--console-channel", str(sock)],
            env={**os.environ, "VRBALANCE_DATA": str(data)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = ChannelClient(sock, msgs.append)
        while not client.connect():
            time.sleep(0.05)
        sent: list[tuple[str, float]] = []
        applied: list[tuple[str, float]] = []
        for trial in range(trials):
            until(lambda m, n=trial: m["type"] == "gate" and m.get("trial") == n)
            if trial:
                client.send("reset")
            client.send("start")
            until(lambda m, n=trial: m["type"] == "tick" and m["trial"] == n and m["streaming"])
            for cmd in ["pause", "resume"] * pairs + ["emergency_stop"]:
                since = len(msgs)
                sent.append((cmd, time.perf_counter()))
                client.send(cmd)
                ev = until(lambda m, c=cmd: m["type"] == "event" and m["kind"] == c, since=since)
                applied.append((cmd, ev["t_s"]))
        until(lambda m: m["type"] == "gate" and m.get("trial") == trials)
        for cmd in ("reset", "stop", "start"):
            client.send(cmd)
        until(lambda m: m["type"] == "end")
        client.close()
        proc.wait(timeout=60)
    lat = [(a - s) * 1e3 for (_c, s), (_k, a) in zip(sent, applied, strict=True)]
    est = [
        (a - s) * 1e3
        for (c, s), (_k, a) in zip(sent, applied, strict=True)
        if c == "emergency_stop"
    ]
    print(
        "\n**Channel alone** (console-side send on the Unix socket -> applied tick, no browser)\n"
    )
    print("| commands | n | median | p99 | max |")
    print("|---|---|---|---|---|")
    for name, v in (("all", lat), ("emergency_stop", est)):
        print(f"| {name} | {len(v)} | {statistics.median(v):.1f} ms | {percentile(v, 99):.1f} ms "
              f"| {max(v):.1f} ms |")  # fmt: skip


def bench_loop(d: Any, patient_url: str, data: Path, runs: int, scale: float) -> None:
    env = {**os.environ, "VRBALANCE_DATA": str(data)}
    stats: dict[str, list[dict[str, Any]]] = {"without console": [], "with console": []}
    for _ in range(runs):
        subprocess.run(
            [sys.executable, "-m", "vrbalance", "run", "--patient", "P1", "--protocol",
             "baseline", "--simulate", "--offscreen", "--seconds-scale", repr(scale)],
            env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        stats["without console"].append(trial_ends(newest_session(data, "P1"))[0])
        start_from_console(d, patient_url)
        wait(d, lambda d: "Trial 1 ready" in text_of(d, "live-gate"), 180.0)
        click(d, "ctl-start")
        wait(d, lambda d: text_of(d, "live-status") == "Session ended", 180.0, poll_s=1.0)
        stats["with console"].append(trial_ends(newest_session(data, "P1"))[0])
    print(f"\n**Balance loop** (250 Hz, baseline trial of {30 * scale:g} s, offscreen render, "
          f"{runs} run(s) each, alternating; medians over runs)\n")  # fmt: skip
    print("| | period error p99 | lateness p99 | lateness max | skipped | overruns | ticks |")
    print("|---|---|---|---|---|---|---|")
    for name, rows in stats.items():

        def med(key: str, rows: list[dict[str, Any]] = rows) -> float:
            return statistics.median(float(r.get(key) or 0.0) for r in rows)

        print(
            f"| {name} | {med('period_error_p99_s') * 1e3:.2f} ms | "
            f"{med('lateness_p99_s') * 1e3:.2f} ms | {med('lateness_max_s') * 1e3:.1f} ms | "
            f"{med('skipped_ticks'):g} | {med('overruns'):g} | {med('ticks'):g} |"
        )
        print(
            "|  per run | "
            + ", ".join(f"{(r.get('period_error_p99_s') or 0) * 1e3:.2f}" for r in rows)
            + " ms | | | "
            + ", ".join(str(r.get("skipped_ticks")) for r in rows)
            + " | | |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (~1.5 min)")
    parser.add_argument("--pairs", type=int, default=None, help="pause/resume pairs per trial")
    parser.add_argument("--runs", type=int, default=None, help="loop runs with and without")
    args = parser.parse_args()
    pairs = args.pairs or (2 if args.quick else 12)
    runs = args.runs or (1 if args.quick else 3)
    click_scale = 1.0
    trials = 2 if args.quick else 5
    loop_scale = 0.2 if args.quick else 0.5
    from tests.console.conftest import chromium_driver, start_console, stop_console

    load0 = os.getloadavg()
    print(f"# bench_console: {os.cpu_count()} CPUs, load average {load0[0]:.2f} at the start")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        env = {**os.environ, "VRBALANCE_DATA": str(data)}
        subprocess.run(
            [sys.executable, "-m", "vrbalance", "patient", "add", "P1"],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        console = start_console(data, "--seconds-scale", repr(click_scale))
        d = chromium_driver(Path(tmp) / "profile")
        try:
            d.get(console.url)
            wait(d, lambda d: d.find_elements("link text", "P1"))
            d.find_element("link text", "P1").click()
            wait(d, lambda d: d.find_elements("id", "go-start"))
            patient_url = d.current_url
            bench_clicks(d, patient_url, data, pairs, trials)
            bench_channel(data, pairs, 2)
            stop_console(console)
            console = start_console(data, "--seconds-scale", repr(loop_scale))
            d.get(console.url)
            wait(d, lambda d: d.find_elements("link text", "P1"))
            d.find_element("link text", "P1").click()
            wait(d, lambda d: d.find_elements("id", "go-start"))
            bench_loop(d, d.current_url, data, runs, loop_scale)
        finally:
            d.quit()
            stop_console(console)
    load1 = os.getloadavg()
    print(f"\nload average {load1[0]:.2f} at the end ({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
