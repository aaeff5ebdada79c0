"""The therapist's path through the console in a real browser (headless Debian Chromium).

Add a patient (a display name with HTML in it), edit the envelope (a value
beyond a hard cap shows the command line's error and cannot be saved), start a
simulated offscreen session, watch the live plot update, pause and resume,
press the emergency stop, and find the trial ended by the operator in the
recording, the record store and the report.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vrbalance.director.envelope import SafetyEnvelope
from vrbalance.errors import ConfigError
from vrbalance.sessions.recorder import read_rows
from vrbalance.sessions.store import Store

XSS_NAME = '<img src=x onerror="window.__xss=1">Ann <b>Bold</b>'
WAIT_S = 60.0


def _wait(driver: Any, until: Callable[[Any], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(
            driver, timeout_s, poll_frequency=0.05,
            ignored_exceptions=(StaleElementReferenceException,),
        ).until(until)  # fmt: skip
    except TimeoutException:
        body = driver.find_element("tag name", "body").text
        raise AssertionError(f"waited {timeout_s} s for {what}; the page says:\n{body}") from None


def _text(driver: Any, element_id: str) -> str:
    found = driver.find_elements("id", element_id)
    return found[0].text if found else ""


def _type(driver: Any, element_id: str, text: str) -> None:
    from selenium.webdriver.common.keys import Keys

    el = _wait(driver, lambda d: d.find_element("id", element_id), element_id)
    el.send_keys(Keys.CONTROL, "a")
    el.send_keys(Keys.DELETE)
    el.send_keys(text)


def _click(driver: Any, element_id: str) -> None:
    _wait(driver, lambda d: d.find_element("id", element_id).is_enabled(), f"{element_id} enabled")
    driver.find_element("id", element_id).click()


def _plot_updates(driver: Any) -> int:
    m = re.search(r"plot updates: (\d+)", _text(driver, "plot-info"))
    return int(m.group(1)) if m else 0


@pytest.mark.slow
@pytest.mark.render
def test_therapist_adds_a_patient_edits_the_envelope_and_stops_a_live_session(
    console_server: Any, make_driver: Callable[..., Any]
) -> None:
    d = make_driver(1280, 800)
    d.get(console_server.url)
    _wait(d, lambda d: "Add a patient" in d.find_element("tag name", "body").text, "patients")
    assert "token" not in d.current_url  # moved into a cookie

    # -- add a patient whose display name is HTML: shown as text, never run
    _type(d, "f-id", "P42")
    _type(d, "f-name", XSS_NAME)
    _type(d, "f-birth", "1948")
    _type(d, "f-height", "1680")  # 1680 cm: refused, with the field named
    _click(d, "add-patient")
    _wait(d, lambda d: "height (cm)" in _text(d, "add-error"), "the height error")
    _type(d, "f-height", "168")
    _type(d, "f-mass", "61.5")
    _type(d, "f-foot", "25")
    _type(d, "f-notes", "<script>window.__xss=2</script> left knee")
    _click(d, "add-patient")
    _wait(d, lambda d: "/patient/" in d.current_url and _text(d, "go-envelope"), "patient page")
    assert "P42" not in d.current_url  # opaque keys, no patient data in URLs
    assert d.find_element("id", "f-name").get_attribute("value") == XSS_NAME
    assert d.execute_script("return window.__xss") is None
    assert d.find_elements("css selector", "img[src='x']") == []
    with Store(console_server.data / "vrbalance.sqlite3") as store:
        p = store.patient("P42")
    assert (p.name, p.birth_year, p.height_m, p.mass_kg, p.foot_length_m) == (
        XSS_NAME, 1948, 1.68, 61.5, 0.25
    )  # fmt: skip
    patient_url = d.current_url

    # -- envelope: beyond a cap shows the CLI's own message and cannot be saved
    _click(d, "go-envelope")
    tilt = "env-visual-max_surround_tilt_deg"
    _wait(d, lambda d: d.find_elements("id", tilt), "the envelope form")
    _type(d, tilt, "12")
    with pytest.raises(ConfigError) as cli:
        SafetyEnvelope.from_dict({"visual": {"max_surround_tilt_deg": 12}}, where="envelope")
    _wait(d, lambda d: _text(d, "envelope-error") == str(cli.value), "the cap error")
    assert not d.find_element("id", "save-envelope").is_enabled()
    _type(d, tilt, "5")
    _wait(d, lambda d: _text(d, "envelope-error") == "", "the error to clear")
    _click(d, "save-envelope")
    _wait(d, lambda d: _text(d, "envelope-saved") == "Envelope saved.", "saved")
    with Store(console_server.data / "vrbalance.sqlite3") as store:
        assert store.patient("P42").envelope["visual"]["max_surround_tilt_deg"] == 5.0

    # -- start a simulated offscreen session (the start page's defaults)
    d.get(patient_url)
    _click(d, "go-start")
    _wait(d, lambda d: "Stand still" in d.find_element("tag name", "body").text, "instructions")
    _click(d, "start-session")
    _wait(d, lambda d: "/station/" in d.current_url, "the live page")
    _wait(d, lambda d: "Trial 1 ready: Baseline" in _text(d, "live-gate"), "the start gate", 90.0)
    assert "Stand still and relaxed" in _text(d, "live-gate")
    _click(d, "ctl-start")
    # Pause at once, before even looking at the plot: the session applies the queued
    # pause at the trial's first tick, so however slow this browser is, the 30 s trial
    # cannot run out before the emergency stop below (trial time stops while paused).
    _click(d, "ctl-pause")

    # -- the live plot updates (CoP over the base of support, >= 20 Hz refresh) while
    # paused (trial time stops, the live picture does not); look, come back, resume
    _wait(d, lambda d: "(paused)" in _text(d, "live-banner"), "paused")
    _wait(d, lambda d: _plot_updates(d) >= 1 and "CoP (" in _text(d, "plot-info"), "the plot")
    first = _plot_updates(d)
    _wait(d, lambda d: _plot_updates(d) >= first + 5, "more plot updates")
    assert "Margin of stability:" in _text(d, "live-margin")
    # The browser goes away and comes back: it sees the running session again.
    live_url = d.current_url
    d.get("about:blank")
    d.get(live_url)
    _wait(d, lambda d: _plot_updates(d) >= 3, "the plot after coming back")
    assert "Trial 1: Baseline" in _text(d, "live-trial")
    assert "(paused)" in _text(d, "live-banner")
    _click(d, "ctl-resume")
    _wait(d, lambda d: "(paused)" not in _text(d, "live-banner"), "resumed")
    _click(d, "ctl-emergency-stop")
    _wait(d, lambda d: "operator pressed the emergency stop" in _text(d, "live-events"), "estop")
    _wait(d, lambda d: _text(d, "live-status") == "Session ended", "the end", 90.0)
    _click(d, "live-results")
    _wait(d, lambda d: "operator_abort" in _text(d, "result-trials"), "the trial's end")
    assert "trial 1: Baseline" in _text(d, "result-trials")
    d.switch_to.frame(d.find_element("id", "report-frame"))
    _wait(d, lambda d: "emergency" in d.find_element("tag name", "body").text, "the report")
    report = d.find_element("tag name", "body").text
    assert "operator pressed the emergency stop" in report
    d.switch_to.default_content()
    # The patient's page lists the session with its status and links; the progress report.
    d.get(patient_url)
    _wait(d, lambda d: d.find_elements("css selector", "[data-kind=report-link]"), "sessions")
    assert [e.text for e in d.find_elements("css selector", "[data-kind=session-status]")] == [
        "complete"
    ]
    _click(d, "go-progress")
    _wait(d, lambda d: d.find_elements("id", "progress-frame"), "the progress page")
    d.switch_to.frame(d.find_element("id", "progress-frame"))
    _wait(d, lambda d: "P42" in d.find_element("tag name", "body").text, "the progress report")
    d.switch_to.default_content()

    # -- the recording says the same, and the session is filed
    with Store(console_server.data / "vrbalance.sqlite3") as store:
        (session,) = store.sessions("P42")
        (trial,) = store.trials(session["id"])
    assert trial["end_reason"] == "operator_abort" and session["status"] == "complete"
    events = read_rows(Path(session["folder"]) / "events.csv")
    operator = [e["kind"] for e in events if e["source"] == "operator"]
    assert operator[:3] == ["pause", "resume", "emergency_stop"]


def _choose(driver: Any, select_id: str, option: str) -> str:
    """Pick ``option`` (its label) in the Quasar select ``select_id``, as a user does.

    Returns the text of the open menu (every option offered).
    """
    _click(driver, select_id)
    xpath = (
        "//div[contains(@class, 'q-menu')]//div[contains(@class, 'q-item')]"
        f"[.//span[text()={option!r}]]"
    )
    _wait(driver, lambda d: d.find_element("xpath", xpath).is_displayed(), f"option {option}")
    offered = driver.find_element("css selector", ".q-menu").text
    driver.find_element("xpath", xpath).click()
    _wait(driver, lambda d: option in _text(d, select_id), f"{select_id} shows {option}")
    return offered


@pytest.mark.render
def test_start_page_offers_a_headset_only_session_and_refuses_what_cannot_run_without_a_plate(
    console_server: Any, make_driver: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plate "none": the output becomes the headset, head-only protocols are named, and a
    plate protocol or another output is refused on Start with run's own words; nothing
    starts (a real headset session needs an OpenXR runtime, which CI has not)."""
    from vrbalance.cli import main
    from vrbalance.sessions.assembly import check_headset_only
    from vrbalance.sessions.protocol import load_protocol

    monkeypatch.setenv("VRBALANCE_DATA", str(console_server.data))
    monkeypatch.delenv("VRBALANCE_DB", raising=False)
    assert main(["patient", "add", "PX1", "--height-cm", "170", "--mass-kg", "70"]) == 0
    d = make_driver(1280, 800)
    d.get(console_server.url)
    link = "//a[@data-kind='patient-link'][text()='PX1']"
    _wait(d, lambda d: d.find_elements("xpath", link), "the patient's link")
    d.find_element("xpath", link).click()
    _click(d, "go-start")
    _wait(d, lambda d: "baseline first" in _text(d, "protocol-plan"), "the start page")
    tandem = load_protocol("tandem_walk", with_baseline=False)
    assert f"{tandem.title} (tandem_walk)" in _text(d, "headset-only-protocols")
    assert "(mctsib)" not in _text(d, "headset-only-protocols")

    _choose(d, "device", "none (headset only)")
    _wait(d, lambda d: "headset (OpenXR)" in _text(d, "output"), "the headset output")
    # The default protocol (baseline) stands on the plate: run's refusal, before Start.
    with pytest.raises(ConfigError) as run_says:
        check_headset_only(load_protocol("baseline", with_baseline=False))
    _wait(d, lambda d: _text(d, "no-plate-refusal") == str(run_says.value), "the refusal")
    _click(d, "start-session")
    _wait(d, lambda d: _text(d, "start-error") == str(run_says.value), "Start refused")

    # A head-only protocol with another output: refused on Start, naming the output.
    offered = _choose(d, "protocol", f"{tandem.title} ({tandem.duration_s / 60:.1f} min)")
    mctsib = load_protocol("mctsib", with_baseline=False)
    assert f"{mctsib.title} ({mctsib.duration_s / 60:.1f} min) - needs a plate" in offered
    _wait(d, lambda d: not d.find_elements("id", "no-plate-refusal"), "no refusal")
    assert f"{len(tandem.trials)} trials" in _text(d, "protocol-plan")
    assert "(no baseline: it is a plate measurement" in _text(d, "protocol-plan")
    _choose(d, "output", "offscreen (no display)")
    _click(d, "start-session")
    _wait(d, lambda d: "needs the headset output, got 'offscreen'" in _text(d, "start-error"),
          "the output refusal")  # fmt: skip
    assert d.current_url.endswith("/start")
    d.get(console_server.base + "/stations")  # nothing was started for this patient
    _wait(d, lambda d: "Sessions started" in d.find_element("tag name", "body").text, "stations")
    assert "PX1" not in d.find_element("tag name", "body").text


@pytest.mark.slow
@pytest.mark.render
def test_a_restarted_console_shows_the_session_its_crashed_predecessor_left_running(
    tmp_path_factory: pytest.TempPathFactory,
    make_driver: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The console dies mid-session (SIGKILL); the one started next lists the session,
    and its live page has the gate, the live plot and the emergency stop, recorded."""
    from vrbalance.cli import main

    from .conftest import CrashingConsole, start_console, stop_console

    data = tmp_path_factory.mktemp("a") / "data"  # short: the socket path has a size limit
    monkeypatch.setenv("VRBALANCE_DATA", str(data))
    monkeypatch.delenv("VRBALANCE_DB", raising=False)
    assert main(["patient", "add", "P8"]) == 0
    crashed = CrashingConsole(None)  # the default runtime folder: $VRBALANCE_DATA/console
    console = None
    try:
        key, _pid = crashed.start_session_and_crash("P8", "baseline")
        console = start_console(data)
        d = make_driver(1280, 800)
        d.get(console.url)
        d.get(console.base + "/stations")
        link = "//a[@data-kind='station-link'][text()='P8: baseline']"
        _wait(d, lambda d: d.find_elements("xpath", link), "the adopted station in the list")
        _wait(
            d,
            lambda d: "started by an earlier console" in d.find_element("tag name", "body").text,
            "the station marked as adopted",
        )
        d.find_element("xpath", link).click()
        _wait(d, lambda d: d.current_url.endswith(f"/station/{key}"), "its live page")
        _wait(d, lambda d: _text(d, "live-title") == "Live session: P8, baseline", "its title")
        _wait(d, lambda d: "Trial 1 ready: Baseline" in _text(d, "live-gate"), "the start gate")
        _click(d, "ctl-start")
        _wait(d, lambda d: _plot_updates(d) >= 5 and "CoP (" in _text(d, "plot-info"), "the plot")
        _click(d, "ctl-emergency-stop")
        _wait(d, lambda d: "operator pressed the emergency stop" in _text(d, "live-events"), "stop")
        _wait(d, lambda d: _text(d, "live-status") == "Session ended", "the end")
    finally:
        if console is not None:
            stop_console(console)
        crashed.cleanup()
    with Store(data / "vrbalance.sqlite3") as store:
        (session,) = store.sessions("P8")
    events = read_rows(Path(session["folder"]) / "events.csv")
    assert [e["kind"] for e in events if e["source"] == "operator"] == ["emergency_stop"]
