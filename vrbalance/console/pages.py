"""The console's pages (NiceGUI): patients, envelope, start, live session, results.

Patient data are shown only through NiceGUI elements that render text (labels,
inputs, tables, notifications), never as HTML, so a display name such as
``<img src=x onerror=...>`` shows as those characters. URLs carry opaque keys
that live only in this console process, never a patient id, name or session
id. Reports are the files :mod:`vrbalance.report` writes, served to the page
in an iframe under ``Content-Security-Policy: sandbox`` (no scripts).

Units at this edge are the clinic's: centimetres for body size and the live
plot, degrees where the envelope says so; everything is converted to SI here.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vrbalance.console.stations import (
    NO_PLATE,
    SessionRequest,
    Station,
    Stations,
    headset_only_output_message,
)
from vrbalance.errors import ConfigError, VrBalanceError

log = logging.getLogger(__name__)

#: The live page's refresh period, s (>= 20 Hz, the issue's floor).
LIVE_PERIOD_S = 0.05
SEXES = {"": "not recorded", "F": "female", "M": "male"}
OUTPUTS = {
    "offscreen": "offscreen (no display)",
    "window": "window (desktop)",
    "headset": "headset (OpenXR)",
    "none": "none (loop, safety and recording only)",
}
RESPONSE_STYLE = {
    "none": ("bg-green-2 text-green-10", "Safe"),
    "warn": ("bg-amber-3 text-black", "Warning"),
    "calm": ("bg-orange-4 text-black", "World calmed"),
    "stop_trial": ("bg-red-8 text-white", "Trial stopped"),
}


# --------------------------------------------------------------------------- context


class Console:
    """What every page needs: the record store's location, the stations, opaque keys.

    Parameters
    ----------
    db : Path, optional
        The record store (default: ``$VRBALANCE_DB`` or the data folder's).
    stations : Stations
    seconds_scale : float
        The start page's default ``--seconds-scale`` (1 in clinic use).
    """

    def __init__(
        self, db: str | Path | None, stations: Stations, seconds_scale: float = 1.0
    ) -> None:
        self.db = db
        self.stations = stations
        self.seconds_scale = float(seconds_scale)
        self._keys: dict[str, tuple[str, str]] = {}
        self._by_value: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def store(self) -> Any:
        from vrbalance.sessions.paths import db_target
        from vrbalance.sessions.store import Store

        return Store(db_target(self.db))

    def key(self, kind: str, value: str) -> str:
        """An opaque URL key for ``(kind, value)`` (stable while the console runs)."""
        with self._lock:
            k = self._by_value.get((kind, value))
            if k is None:
                k = secrets.token_urlsafe(9)
                self._keys[k] = (kind, value)
                self._by_value[(kind, value)] = k
            return k

    def lookup(self, kind: str, key: str) -> str | None:
        with self._lock:
            found = self._keys.get(key)
        return found[1] if found is not None and found[0] == kind else None


# --------------------------------------------------------------------------- helpers


def frame(title: str) -> None:
    """The header every page shares (navigation) and the page title."""
    from nicegui import ui

    ui.page_title(f"{title} - vrbalance console")
    with ui.header().classes("items-center bg-blue-grey-9"):
        ui.label("vrbalance console").classes("text-h6")
        ui.link("Patients", "/").classes("text-white").props("id=nav-patients")
        ui.link("Stations", "/stations").classes("text-white").props("id=nav-stations")


def not_found(what: str) -> None:
    from nicegui import ui

    ui.label(f"No such {what} (links last while this console runs).").classes("text-negative")
    ui.link("Back to the patients", "/")


def framed(console: Console, title: str, kind: str, key: str) -> str | None:
    """A page's :func:`frame` and the id its link ``key`` stands for.

    Every page about one patient or session opens the same way; on an unknown
    (or expired) key the page shows :func:`not_found` and gets ``None``.
    """
    frame(title)
    found = console.lookup(kind, key)
    if found is None:
        not_found(kind)
    return found


def opt_number(
    text: Any, name: str, *, scale: float = 1.0, low: float, high: float, integer: bool = False
) -> float | None:
    """A form's optional number, checked with the CLI's messages; ``None`` if left empty."""
    from vrbalance.config.check import check_number

    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    value: Any = parse_value(text.replace(",", ".") if isinstance(text, str) else text)
    checked = check_number(value, name, min_value=low, max_value=high, integer=integer)
    return int(checked) if integer else checked * scale


def patient_from_form(pid: str, form: dict[str, Any]) -> Any:
    """A :class:`Patient` from the form's strings (cm -> m).

    Raises
    ------
    ConfigError
        Naming the field, as the command line would.
    """
    from vrbalance.sessions.runner import check_patient_id
    from vrbalance.sessions.store import Patient

    check_patient_id(pid)
    year_now = datetime.date.today().year
    sex = str(form.get("sex") or "")
    if sex not in SEXES:
        raise ConfigError(f"sex: expected F, M or empty, got {sex!r}")
    birth = opt_number(form.get("birth_year"), "birth year", low=1900, high=year_now, integer=True)
    return Patient(
        id=pid,
        name=str(form.get("name") or "").strip(),
        birth_year=None if birth is None else int(birth),
        sex=sex,
        height_m=opt_number(form.get("height_cm"), "height (cm)", scale=0.01, low=50, high=250),
        mass_kg=opt_number(form.get("mass_kg"), "mass (kg)", low=10, high=300),
        foot_length_m=opt_number(
            form.get("foot_length_cm"), "foot length (cm)", scale=0.01, low=10, high=40
        ),
        notes=str(form.get("notes") or ""),
    )


def _cm(value_m: float | None) -> str:
    return "" if value_m is None else f"{value_m * 100:g}"


def patient_form(patient: Any | None) -> dict[str, Any]:
    """Inputs for the patient's details; returns the dict of elements by field."""
    from nicegui import ui

    p = patient
    fields: dict[str, Any] = {}
    with ui.grid(columns=2).classes("w-full gap-2"):
        fields["name"] = ui.input("Display name", value=p.name if p else "").props("for=f-name")
        fields["birth_year"] = ui.input(
            "Birth year", value="" if not p or p.birth_year is None else str(p.birth_year)
        ).props("for=f-birth")
        fields["sex"] = ui.select(SEXES, value=p.sex if p else "", label="Sex").props("id=f-sex")
        fields["height_cm"] = ui.input("Height (cm)", value=_cm(p.height_m if p else None)).props(
            "for=f-height"
        )
        fields["mass_kg"] = ui.input(
            "Mass (kg)", value="" if not p or p.mass_kg is None else f"{p.mass_kg:g}"
        ).props("for=f-mass")
        fields["foot_length_cm"] = ui.input(
            "Foot length (cm)", value=_cm(p.foot_length_m if p else None)
        ).props("for=f-foot")
    fields["notes"] = (
        ui.textarea("Notes", value=p.notes if p else "").classes("w-full").props("for=f-notes")
    )
    return fields


# --------------------------------------------------------------------------- envelope


@dataclasses.dataclass(frozen=True, slots=True)
class EnvelopeField:
    """One editable envelope field: where it lives in the TOML document and its bounds."""

    table: str
    name: str
    unit: str
    default: Any
    cap: str  # "<= 10" / ">= 0.4" / "" (shown beside the field)
    integer: bool = False


def _unit(name: str) -> str:
    for suffix, unit in (
        ("_deg", "deg"),
        ("_dps", "deg/s"),
        ("_mps", "m/s"),
        ("_m", "m"),
        ("_s", "s"),
        ("_fraction", "fraction of body weight"),
    ):
        if name.endswith(suffix):
            return unit
    return ""


def envelope_fields() -> list[EnvelopeField]:
    """Every field of the envelope, with unit, default and hard cap (``docs/safety.md``)."""
    from vrbalance.config.scenes import available_scenes
    from vrbalance.director.envelope import HARD_CAPS, SafetyEnvelope

    defaults = SafetyEnvelope()
    out: list[EnvelopeField] = []
    for scene in [*available_scenes(), "other"]:
        default = defaults.other_max_level if scene == "other" else defaults.max_level(scene)
        out.append(
            EnvelopeField(
                "levels", scene, "level", default, f"<= {HARD_CAPS.max_level}", integer=True
            )
        )
    for table, names in (
        (
            "visual",
            (
                "max_surround_tilt_deg",
                "max_surround_rate_dps",
                "max_optic_flow_mps",
                "min_passing_distance_m",
            ),
        ),
        ("time", ("max_trial_s", "max_session_s", "min_rest_s")),
    ):
        for name in names:
            cap = getattr(HARD_CAPS, name)
            sign = ">=" if name.startswith("min_") else "<="
            out.append(
                EnvelopeField(table, name, _unit(name), getattr(defaults, name), f"{sign} {cap:g}")
            )
    for f in dataclasses.fields(defaults.monitor):
        cap = ""
        if hasattr(HARD_CAPS, f"max_{f.name}"):
            cap = f"<= {getattr(HARD_CAPS, f'max_{f.name}'):g}"
        elif hasattr(HARD_CAPS, f"min_{f.name}"):
            cap = f">= {getattr(HARD_CAPS, f'min_{f.name}'):g}"
        out.append(
            EnvelopeField("monitor", f.name, _unit(f.name), getattr(defaults.monitor, f.name), cap)
        )
    return out


def parse_value(text: Any) -> Any:
    """A typed value as TOML would give it: an int, a float, or the raw text (then refused)."""
    if isinstance(text, (int, float)):
        return text
    s = str(text or "").strip()
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        return s


def envelope_document(values: dict[tuple[str, str], Any], stances: list[str]) -> dict[str, Any]:
    """The TOML-shaped document :meth:`SafetyEnvelope.from_dict` reads, from the form."""
    doc: dict[str, Any] = {"stances": {"allowed": list(stances)}}
    for (table, name), text in values.items():
        doc.setdefault(table, {})[name] = parse_value(text)
    return doc


def validate_envelope(doc: dict[str, Any]) -> tuple[Any, str | None]:
    """``(envelope, None)`` or ``(None, message)``: the command line's own validation."""
    from vrbalance.director.envelope import SafetyEnvelope

    try:
        return SafetyEnvelope.from_dict(doc, where="envelope"), None
    except ConfigError as exc:
        return None, str(exc)


def field_of_message(message: str, fields: list[EnvelopeField]) -> tuple[str, str] | None:
    """Which field an envelope error names (the message says ``[table] name:``)."""
    for f in fields:
        if f"[{f.table}] {f.name}:" in message or f"[{f.table}]: {f.name}" in message:
            return f.table, f.name
    for f in fields:
        if f" {f.name}:" in message:
            return f.table, f.name
    return None


# --------------------------------------------------------------------------- pages


def register_pages(console: Console, web: Any) -> None:
    """Define every page and the report routes (call before ``ui.run_with``)."""
    from fastapi.responses import HTMLResponse, PlainTextResponse
    from nicegui import ui

    # -- reports, served to iframes ------------------------------------------------

    def _report_response(path: Path) -> HTMLResponse:
        return HTMLResponse(
            path.read_text(encoding="utf-8"),
            headers={"Content-Security-Policy": "sandbox", "Cache-Control": "no-store"},
        )

    @web.get("/files/report/{key}", include_in_schema=False)
    def report_file(key: str) -> Any:
        sid = console.lookup("session", key)
        if sid is None:
            return PlainTextResponse("no such session\n", status_code=404)
        from vrbalance.report.html import session_report

        with console.store() as store:
            folder = Path(store.session(sid)["folder"])
        out = folder / "report.html"
        sidecar = folder / "session.json"
        if not out.exists() or (sidecar.exists() and sidecar.stat().st_mtime > out.stat().st_mtime):
            out = session_report(folder)
        return _report_response(out)

    @web.get("/files/progress/{key}", include_in_schema=False)
    def progress_file(key: str) -> Any:
        pid = console.lookup("patient", key)
        if pid is None:
            return PlainTextResponse("no such patient\n", status_code=404)
        from vrbalance.report.progress import progress_report

        out = console.stations.runtime_dir / f"progress-{secrets.token_hex(6)}.html"
        with console.store() as store:
            progress_report(store, pid, out, make_reports=False)
        try:
            return _report_response(out)
        finally:
            out.unlink(missing_ok=True)

    # -- patients ---------------------------------------------------------------------

    @ui.page("/")
    def patients_page() -> None:
        frame("Patients")
        with console.store() as store:
            patients = store.patients()
            counts = {p.id: len(store.sessions(p.id)) for p in patients}
        ui.label("Patients").classes("text-h5")
        search = ui.input("Search id or name").props("for=search clearable").classes("w-96")

        @ui.refreshable
        def listing() -> None:
            q = (search.value or "").strip().lower()
            shown = [p for p in patients if not q or q in p.id.lower() or q in p.name.lower()]
            if not shown:
                ui.label("No patients match." if patients else "No patients yet: add one below.")
            with ui.column().classes("gap-1"):
                for p in shown:
                    with ui.row().classes("items-center gap-4"):
                        ui.link(p.id, f"/patient/{console.key('patient', p.id)}").props(
                            "data-kind=patient-link"
                        )
                        ui.label(p.name).classes("w-56")
                        ui.label("" if p.birth_year is None else str(p.birth_year))
                        ui.label(f"{counts.get(p.id, 0)} session(s)")

        search.on_value_change(lambda _e: listing.refresh())
        listing()
        ui.separator()
        ui.label("Add a patient").classes("text-h6")
        pid = ui.input("Patient id (pseudonymous)").props("for=f-id").classes("w-96")
        form = patient_form(None)
        error = ui.label("").classes("text-negative").props("id=add-error")

        def add() -> None:
            from vrbalance.sessions.store import StoreError

            try:
                patient = patient_from_form(
                    (pid.value or "").strip(), {k: v.value for k, v in form.items()}
                )
                with console.store() as store:
                    store.add_patient(patient)
            except (ConfigError, StoreError) as exc:
                error.set_text(str(exc))
                return
            ui.navigate.to(f"/patient/{console.key('patient', patient.id)}")

        ui.button("Add patient", on_click=add).props("id=add-patient")

    @ui.page("/patient/{key}")
    def patient_page(key: str) -> None:
        pid = framed(console, "Patient", "patient", key)
        if pid is None:
            return
        with console.store() as store:
            patient = store.patient(pid)
            sessions = store.sessions(pid)
        ui.label(f"Patient {patient.id}").classes("text-h5")
        with ui.row():
            ui.button(
                "Safety envelope", on_click=lambda: ui.navigate.to(f"/patient/{key}/envelope")
            ).props("id=go-envelope")
            ui.button(
                "Start a session", on_click=lambda: ui.navigate.to(f"/patient/{key}/start")
            ).props("id=go-start")
            ui.link("Progress report", f"/progress/{key}").props("id=go-progress")
        with ui.card().classes("w-full max-w-3xl"):
            ui.label("Details").classes("text-h6")
            form = patient_form(patient)
            msg = ui.label("").props("id=edit-msg")

            def save() -> None:
                from vrbalance.sessions.store import StoreError

                try:
                    updated = patient_from_form(pid, {k: v.value for k, v in form.items()})
                    with console.store() as store:
                        store.update_patient(updated)
                except (ConfigError, StoreError) as exc:
                    msg.set_text(str(exc))
                    msg.classes(replace="text-negative")
                    return
                msg.set_text("Saved.")
                msg.classes(replace="text-positive")

            ui.button("Save details", on_click=save).props("id=save-patient")
        ui.label("Sessions").classes("text-h6")
        if not sessions:
            ui.label("No sessions yet.")
        for s in reversed(sessions):
            skey = console.key("session", s["id"])
            with ui.row().classes("items-center gap-4"):
                ui.label(s["started_utc"][:16].replace("T", " "))
                ui.label(s["protocol"])
                ui.label(s["status"]).props("data-kind=session-status")
                ui.label(s["end_reason"] or "")
                ui.link("Report", f"/results/{skey}").props("data-kind=report-link")

    @ui.page("/progress/{key}")
    def progress_page(key: str) -> None:
        pid = framed(console, "Progress", "patient", key)
        if pid is None:
            return
        ui.link("Back to the patient", f"/patient/{key}")
        ui.element("iframe").props(f"src=/files/progress/{key} id=progress-frame").classes(
            "w-full"
        ).style("height: 80vh; border: 0")

    # -- envelope -----------------------------------------------------------------------

    @ui.page("/patient/{key}/envelope")
    def envelope_page(key: str) -> None:
        from vrbalance.balance.stance import STANCE_NAMES
        from vrbalance.director.envelope import SafetyEnvelope

        pid = framed(console, "Safety envelope", "patient", key)
        if pid is None:
            return
        with console.store() as store:
            patient = store.patient(pid)
        current = (
            SafetyEnvelope.from_dict(dict(patient.envelope), where=f"patient {pid} envelope")
            if patient.envelope
            else SafetyEnvelope()
        )
        doc = current.to_dict()
        fields = envelope_fields()
        ui.label(f"Safety envelope of {patient.id}").classes("text-h5")
        ui.label(
            "Every value is checked against vrbalance's hard caps as you type, with the same "
            "messages as `vrbalance patient set-envelope`. A value beyond a cap is refused, "
            "never clamped."
        )
        banner = ui.label("").classes("text-negative text-bold").props("id=envelope-error")
        inputs: dict[tuple[str, str], Any] = {}
        state: dict[str, str | None] = {"error": None}

        def current_doc() -> dict[str, Any]:
            return envelope_document({k: v.value for k, v in inputs.items()}, stances.value)

        def check() -> None:
            _env, err = validate_envelope(current_doc())
            state["error"] = err
            banner.set_text(err or "")
            named = field_of_message(err, fields) if err else None
            for (table, name), element in inputs.items():
                element.props(remove="error error-message")
                if named == (table, name):
                    element.props(f'error error-message="{_attr(err or "")}"')
            save_btn.set_enabled(err is None)

        titles = {"levels": "Highest level per scene", "visual": "Visual world",
                  "time": "Time", "monitor": "Safety monitor thresholds"}  # fmt: skip
        for table in ("levels", "visual", "time", "monitor"):
            ui.label(titles[table]).classes("text-h6")
            with ui.grid(columns=4).classes("items-center gap-x-4 gap-y-1"):
                ui.label("field").classes("text-bold")
                ui.label("value").classes("text-bold")
                ui.label("default").classes("text-bold")
                ui.label("hard cap").classes("text-bold")
                for f in (f for f in fields if f.table == table):
                    value = doc.get(table, {}).get(f.name, f.default)
                    ui.label(f"{f.name} ({f.unit})" if f.unit else f.name)
                    inputs[(table, f.name)] = (
                        ui.input(value=f"{value:g}" if isinstance(value, float) else str(value))
                        .props(f"dense for=env-{table}-{f.name}")
                        .on_value_change(lambda _e: check())
                    )
                    ui.label(f"{f.default:g}" if isinstance(f.default, float) else str(f.default))
                    ui.label(f.cap or "-")
        ui.label("Allowed stances").classes("text-h6")
        stances = (
            ui.select(list(STANCE_NAMES), value=list(doc["stances"]["allowed"]), multiple=True)
            .props("id=env-stances use-chips")
            .classes("w-full max-w-3xl")
        )
        stances.on_value_change(lambda _e: check())
        saved = ui.label("").props("id=envelope-saved")

        def save() -> None:
            env, err = validate_envelope(current_doc())
            if err is not None or env is None:
                banner.set_text(err or "")
                return
            from vrbalance.sessions.store import StoreError

            try:
                with console.store() as store:  # never silently undo another station's edit
                    store.set_envelope(pid, env.to_dict(), if_version=patient.envelope_version)
            except StoreError as exc:
                banner.set_text(f"{exc} (reload the page to see the current envelope)")
                return
            saved.set_text("Envelope saved.")

        save_btn = ui.button("Save envelope", on_click=save).props("id=save-envelope")
        ui.link("Back to the patient", f"/patient/{key}")

    # -- start ------------------------------------------------------------------------

    @ui.page("/patient/{key}/start")
    def start_page(key: str) -> None:
        from vrbalance.sessions.assembly import check_headset_only
        from vrbalance.sessions.protocol import list_protocols, load_protocol
        from vrbalance.sessions.runner import check_protocol, patient_envelope

        pid = framed(console, "Start a session", "patient", key)
        if pid is None:
            return
        with console.store() as store:
            patient = store.patient(pid)
            last = store.last_levels(pid)
        envelope = patient_envelope(patient)
        protocols = {}
        # Without a plate (headset only) a session runs the protocol without the
        # baseline (a plate measurement), and only if no trial is on the plate:
        # the same check `run` makes (the refusal text is run's own).
        bare: dict[str, Any] = {}
        no_plate_refusal: dict[str, str] = {}
        for name in list_protocols():
            try:
                protocols[name] = load_protocol(name)
                bare[name] = load_protocol(name, with_baseline=False)
            except VrBalanceError as exc:
                log.warning("protocol %s not offered: %s", name, exc)
                protocols.pop(name, None)
                continue
            try:
                check_headset_only(bare[name])
            except ConfigError as exc:
                no_plate_refusal[name] = str(exc)
        ui.label(f"Start a session for {patient.id}").classes("text-h5")

        def protocol_options(no_plate: bool) -> dict[str, str]:
            """Titles and planned minutes of what would run (no baseline without a plate)."""
            return {
                n: f"{p.title} ({p.duration_s / 60:.1f} min)"
                + (" - needs a plate" if no_plate and n in no_plate_refusal else "")
                for n, p in (bare if no_plate else protocols).items()
            }

        choice = (
            ui.select(
                protocol_options(False),
                value="baseline" if "baseline" in protocols else next(iter(protocols), None),
                label="Protocol",
            )
            .props("id=protocol")
            .classes("w-96")
        )
        details = ui.column()
        ports = _ports()
        devices = (
            {"simulated": "simulated patient"}
            | {p: f"serial port {p}" for p in ports}
            | {NO_PLATE: "none (headset only)"}
        )
        with ui.row():
            device = ui.select(devices, value="simulated", label="Plate").props("id=device")
            output = ui.select(OUTPUTS, value="offscreen", label="Output").props("id=output")
            scale = ui.input("Seconds scale", value=f"{console.seconds_scale:g}").props(
                "for=seconds-scale"
            )
        if not ports:
            ui.label(
                "No serial ports found: the simulated patient is offered (or none, headset only)."
            ).classes("text-caption")
        head_only = [n for n in protocols if n not in no_plate_refusal]
        ui.label(
            "Plate none (headset only): the headset's tracked head is the only input, so the "
            "output is the headset; no baseline (a plate measurement); head-only protocols: "
            + (", ".join(f"{protocols[n].title} ({n})" for n in head_only) or "none shipped")
        ).classes("text-caption").props("id=headset-only-protocols")
        levels: dict[str, Any] = {}
        error = ui.label("").classes("text-negative").props("id=start-error")

        def chosen_protocol() -> Any:
            """The protocol the session would run: without the baseline with no plate."""
            return (bare if device.value == NO_PLATE else protocols).get(choice.value)

        def show() -> None:
            details.clear()
            levels.clear()
            proto = chosen_protocol()
            if proto is None:
                return
            no_plate = device.value == NO_PLATE
            with details:
                ui.label(proto.description)
                ui.label(
                    f"{len(proto.trials)} trials, {proto.duration_s:.0f} s of trials planned "
                    + (
                        "(baseline first; rests between trials as the envelope says)"
                        if not no_plate
                        else "(the quiet-stance baseline, a plate measurement)"
                        if choice.value == "baseline"
                        else "(no baseline: it is a plate measurement and this session has no "
                        "plate; rests between trials as the envelope says)"
                    )
                ).props("id=protocol-plan")
                if no_plate and choice.value in no_plate_refusal:
                    ui.label(no_plate_refusal[choice.value]).classes("text-negative").props(
                        "id=no-plate-refusal"
                    )
                try:
                    check_protocol(proto, envelope)
                except ConfigError as exc:
                    ui.label(str(exc)).classes("text-negative")
                scenes = sorted({t.scene for t in proto.trials if t.director})
                for scene in scenes:
                    top = envelope.max_level(scene)
                    levels[scene] = ui.number(
                        f"Starting level in {scene} (1-{top}, envelope)",
                        value=min(max(1, last.get(scene, 1)), max(top, 1)),
                        min=1,
                        max=top,
                        step=1,
                        precision=0,
                    ).props(f"for=level-{scene}")
                ui.label("Trials and what to tell the patient").classes("text-h6")
                for i, t in enumerate(proto.trials):
                    with ui.row().classes("gap-2"):
                        ui.label(f"{i + 1}. {t.name} ({t.scene}, {t.stance}, {t.duration_s:g} s)")
                        ui.label(t.instructions).classes("italic")

        def device_changed() -> None:
            # No plate: the headset is the only input, so offer it as the output
            # (Start still refuses another output the therapist picks after this).
            if device.value == NO_PLATE:
                output.set_value("headset")
            choice.set_options(protocol_options(device.value == NO_PLATE), value=choice.value)
            error.set_text("")
            show()

        choice.on_value_change(lambda _e: show())
        device.on_value_change(lambda _e: device_changed())
        show()

        def start() -> None:
            proto = chosen_protocol()
            try:
                if proto is None:
                    raise ConfigError("protocol: choose one")
                if device.value == NO_PLATE:
                    if output.value != "headset":
                        raise ConfigError(headset_only_output_message(output.value))
                    check_headset_only(proto)
                s = opt_number(scale.value, "--seconds-scale", low=1e-3, high=1.0)
                check_protocol(proto, envelope)
                chosen = []
                for scene, el in levels.items():
                    top = envelope.max_level(scene)
                    lv = opt_number(el.value, f"starting level in {scene}", low=1, high=top,
                                    integer=True)  # fmt: skip
                    if lv is not None:
                        chosen.append((scene, int(lv)))
                request = SessionRequest(
                    patient_id=pid,
                    protocol=proto.name,
                    device=device.value,
                    output=output.value,
                    start_levels=tuple(chosen),
                    seconds_scale=1.0 if s is None else s,
                )
            except ConfigError as exc:
                error.set_text(str(exc))
                return
            station = console.stations.start(request)
            ui.navigate.to(f"/station/{station.key}")

        ui.button("Start session", on_click=start).props("id=start-session color=primary")

    # -- stations and the live page --------------------------------------------------------

    @ui.page("/stations")
    def stations_page() -> None:
        frame("Stations")
        ui.label("Sessions started from this console, or found still running").classes("text-h5")
        shown: list[tuple[Any, ...]] = []

        def rows() -> list[tuple[Any, ...]]:
            return [
                (st.key, st.patient_id, st.protocol, st.snapshot()["status"], st.adopted)
                for st in console.stations.all()
            ]

        @ui.refreshable
        def station_list() -> None:
            shown[:] = rows()
            if not shown:
                ui.label("None yet: start one from a patient's page.")
            for key, patient_id, protocol, status, adopted in shown:
                with ui.row().classes("items-center gap-4").props("data-kind=station"):
                    # An adopted station knows its patient and protocol once its hello came.
                    what = f"{patient_id}: {protocol}" if patient_id else "(connecting)"
                    ui.link(what, f"/station/{key}").props("data-kind=station-link")
                    ui.label(status).props("data-kind=station-status")
                    if adopted:
                        ui.label("started by an earlier console, found running").classes(
                            "text-caption"
                        ).props("data-kind=station-adopted")

        def refresh() -> None:  # rebuilt only when something changed (links stay clickable)
            if rows() != shown:
                station_list.refresh()

        station_list()
        ui.timer(1.0, refresh)

    @ui.page("/station/{key}")
    def live_page(key: str) -> None:
        frame("Live session")
        station = console.stations.get(key)
        if station is None:
            not_found("station")
            return
        live_view(console, station)

    @ui.page("/results/{key}")
    def results_page(key: str) -> None:
        sid = framed(console, "Results", "session", key)
        if sid is None:
            return
        with console.store() as store:
            row = store.session(sid)
            trials = store.trials(sid)
        pkey = console.key("patient", row["patient_id"])
        ui.label(f"Session of {row['patient_id']}: {row['protocol']}").classes("text-h5")
        with ui.row().classes("gap-4"):
            ui.label(f"status: {row['status']}").props("id=result-status")
            ui.label(f"ended: {row['end_reason']}").props("id=result-end")
            ui.link("Progress report", f"/progress/{pkey}")
            ui.link("Back to the patient", f"/patient/{pkey}")
        with ui.column().classes("gap-0").props("id=result-trials"):
            for t in trials:
                ui.label(
                    f"trial {t['idx'] + 1}: {t['name']}, level {t['level']}: {t['end_reason']}"
                ).props("data-kind=result-trial")
        ui.element("iframe").props(f"src=/files/report/{key} id=report-frame").classes(
            "w-full"
        ).style("height: 80vh; border: 0")


def _attr(text: str) -> str:
    """Text safe inside a double-quoted Quasar prop (NiceGUI escapes the value again)."""
    return text.replace('"', "'").replace("\n", " ")


def _ports() -> list[str]:
    try:
        from serial.tools import list_ports
    except ImportError:
        return []
    return sorted(p.device for p in list_ports.comports())


# --------------------------------------------------------------------------- live view


def _plot_options() -> dict[str, Any]:
    return {
        "animation": False,
        "grid": {"left": 50, "right": 20, "top": 20, "bottom": 80},
        "legend": {"bottom": 0},
        "xAxis": {"type": "value", "name": "x, right (cm)", "min": -20, "max": 20,
                  "nameLocation": "middle", "nameGap": 25},
        "yAxis": {"type": "value", "name": "y, forward (cm)", "min": -20, "max": 20,
                  "nameLocation": "middle", "nameGap": 30},
        "series": [
            {"name": "base of support", "type": "line", "data": [], "showSymbol": False,
             "lineStyle": {"color": "#455a64", "width": 2}, "areaStyle": {"opacity": 0.08}},
            {"name": "CoP trail", "type": "line", "data": [], "showSymbol": False,
             "lineStyle": {"color": "#1e88e5", "width": 1}},
            {"name": "XCoM trail", "type": "line", "data": [], "showSymbol": False,
             "lineStyle": {"color": "#e53935", "width": 1, "type": "dashed"}},
            {"name": "CoP", "type": "scatter", "data": [], "symbolSize": 14,
             "itemStyle": {"color": "#1e88e5"}},
            {"name": "XCoM", "type": "scatter", "data": [], "symbolSize": 14, "symbol": "diamond",
             "itemStyle": {"color": "#e53935"}},
        ],
    }  # fmt: skip


def _cm_pair(p: Any) -> list[float] | None:
    return None if p is None else [round(p[0] * 100, 2), round(p[1] * 100, 2)]


def live_view(console: Console, station: Station) -> None:
    """The live session: timer, scene, level, plot, margin, safety banner, decisions, controls."""
    from nicegui import ui

    title = ui.label("").classes("text-h5").props("id=live-title")
    status = ui.label("").props("id=live-status")
    why = ui.label("").classes("text-negative").style("white-space: pre-wrap").props("id=live-why")
    with ui.row().classes("w-full items-center no-wrap gap-4"):
        with ui.element("div").classes("col-grow"):
            banner = (
                ui.label("")
                .classes("text-h6 q-pa-sm rounded-borders w-full")
                .props("id=live-banner")
            )
        # Always in view, beside the safety banner, whatever the screen's shape.
        ui.button("EMERGENCY STOP", on_click=lambda: send("emergency_stop")).props(
            "id=ctl-emergency-stop color=negative size=lg"
        )
    with ui.row().classes("w-full items-start gap-4"):
        with ui.column().classes("gap-1").style("width: 420px"):
            chart = (
                ui.echart(_plot_options())
                .style("width: 420px; height: 420px")
                .props("id=live-plot")
            )
            plot_info = ui.label("").classes("text-caption").props("id=plot-info")
        with ui.column().classes("gap-1").style("width: 340px"):
            trial = ui.label("").classes("text-h6").props("id=live-trial")
            timer_label = ui.label("").classes("text-h5").props("id=live-timer")
            level = ui.label("").props("id=live-level")
            margin = ui.label("").classes("text-h6").props("id=live-margin")
            gate = ui.card().classes("w-full bg-blue-1").props("id=live-gate")
            with gate:
                gate_title = ui.label("").classes("text-bold")
                gate_text = ui.label("").classes("italic")
                start_btn = ui.button("Start trial", on_click=lambda: send("start")).props(
                    "id=ctl-start color=positive"
                )
            with ui.row().classes("gap-1"):
                for label, cmd in (
                    ("Pause", "pause"), ("Resume", "resume"), ("Skip trial", "skip"),
                    ("Level -", "level_down"), ("Level +", "level_up"), ("Pin level", "pin_level"),
                    ("Lock scene", "lock_scene"), ("Recenter", "recenter"),
                    ("Reset after stop", "reset"), ("End session", "stop"),
                ):  # fmt: skip
                    ui.button(label, on_click=lambda c=cmd: send(c)).props(
                        f"id=ctl-{cmd.replace('_', '-')} outline dense"
                    )
            results = ui.link("", "#").props("id=live-results")
            results.set_visibility(False)
        with ui.column().classes("gap-1").style("width: 360px"):
            ui.label("Director's decisions").classes("text-h6")
            # One text element each (not a label per line): cheap for the server and the
            # browser at the live page's refresh rate.
            decisions = ui.label("").style("white-space: pre-line").props("id=live-decisions")
            ui.label("Events").classes("text-h6")
            events = ui.label("").style("white-space: pre-line").props("id=live-events")

    seen = {"events": -1, "refusals": 0, "ticks": -1, "plot_updates": 0, "bos": None}

    def send(cmd: str) -> None:
        if not station.send(cmd):
            ui.notify("Not connected to the session: use the window's keys", type="negative")

    def refresh() -> None:
        snap = station.snapshot()
        st = snap["status"]
        # An adopted station learns its patient and protocol from the session's hello.
        title.set_text(
            f"Live session: {station.patient_id}, {station.protocol}"
            if station.patient_id
            else "Live session: connecting to the session..."
        )
        connected = snap["connected"]
        status.set_text(
            {"starting": "Starting the session...", "running": "Session running",
             "ended": "Session ended", "died": "Session process ended unexpectedly"}[st]
            + ("" if connected or st in ("ended", "died") else " (channel reconnecting)")
        )  # fmt: skip
        why.set_text(snap["why"])
        end = snap["end"]
        if st in ("ended", "died") and station.session_id and not results.visible:
            results.set_text("Results of this session")
            results.props(f"href=/results/{console.key('session', station.session_id)}")
            results.set_visibility(True)
        g = snap["gate"]
        gate.set_visibility(bool(g.get("waiting")) and st == "running")
        if g.get("waiting"):
            gate_title.set_text(
                f"Trial {g['trial'] + 1} ready: {g['name']} ({g['scene']}, "
                f"{g['stance'].replace('_', ' ')}, {g['duration_s']:g} s). Read aloud:"
            )
            gate_text.set_text(g.get("instructions") or "")
        refusals = snap["refusals"]
        if len(refusals) != seen["refusals"]:
            for r in refusals[seen["refusals"] :]:
                ui.notify(f"{r.get('cmd', 'command')} refused: {r.get('reason')}", type="warning")
            seen["refusals"] = len(refusals)
        tick = snap["tick"]
        if end is not None:
            banner.set_text(f"Session ended: {end.get('end_reason')}")
            banner.classes(replace="text-h6 q-pa-sm rounded-borders w-full bg-grey-4")
        elif tick is not None:
            if tick["estop"]:
                cls, text = "bg-red-8 text-white", "EMERGENCY STOP"
            else:
                cls, text = RESPONSE_STYLE.get(tick["response"], RESPONSE_STYLE["none"])
            if tick.get("cause"):
                text += f": {tick['cause'].replace('_', ' ')}"
            if tick["paused"]:
                text += " (paused)"
            if not tick["streaming"]:
                text = "Connecting the inputs..."
            banner.set_text(text)
            banner.classes(replace=f"text-h6 q-pa-sm rounded-borders w-full {cls}")
        if tick is not None and snap["ticks_seen"] != seen["ticks"]:
            seen["ticks"] = snap["ticks_seen"]
            trial.set_text(f"Trial {tick['trial'] + 1}: {tick['name']} - scene {tick['scene']}")
            left = max(tick["duration_s"] - tick["elapsed_s"], 0.0)
            timer_label.set_text(f"{tick['elapsed_s']:5.1f} s / {tick['duration_s']:g} s "
                                 f"({left:.1f} s left)")  # fmt: skip
            level.set_text(f"Level {tick['level']}")
            m = tick.get("margin_xcom_m")
            margin.set_text(
                "Margin of stability: -" if m is None else f"Margin of stability: {m * 100:.1f} cm"
            )
            _update_plot(chart, tick, snap["trail"], seen)
            plot_info.set_text(
                f"plot updates: {seen['plot_updates']}; CoP "
                + ("-" if tick.get("cop_m") is None else
                   "({:.1f}, {:.1f}) cm".format(*_cm_pair(tick["cop_m"])))  # type: ignore[str-format]
            )  # fmt: skip
        if snap["events_seen"] != seen["events"]:
            seen["events"] = snap["events_seen"]
            evs = snap["events"]
            decisions.set_text(
                "\n".join(
                    f"trial {e['trial'] + 1}: {e['message']}"
                    for e in [e for e in evs if e["source"] == "director"][-10:][::-1]
                )
            )
            events.set_text(
                "\n".join(
                    ("ALARM " if e["severity"] == "alarm" else "")
                    + f"{e['source']}: {e['message']}"
                    for e in evs[-14:][::-1]
                )
            )
        start_btn.set_enabled(bool(g.get("waiting")))

    refresh()
    ui.timer(LIVE_PERIOD_S, refresh)


def _update_plot(chart: Any, tick: dict[str, Any], trail: list[Any], seen: dict[str, Any]) -> None:
    series = chart.options["series"]
    bos = tick.get("bos_m")
    if bos and bos != seen["bos"]:
        seen["bos"] = bos
        pts = [_cm_pair(p) for p in bos]
        series[0]["data"] = [*pts, pts[0]]
        xs = [p[0] for p in pts]  # type: ignore[index]
        ys = [p[1] for p in pts]  # type: ignore[index]
        half = max(max(xs) - min(xs), max(ys) - min(ys)) / 2 + 6
        cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
        chart.options["xAxis"].update(min=math.floor(cx - half), max=math.ceil(cx + half))
        chart.options["yAxis"].update(min=math.floor(cy - half), max=math.ceil(cy + half))
    now = tick["trial"]
    series[1]["data"] = [_cm_pair(c) for t, c, _x in trail if t == now]
    series[2]["data"] = [_cm_pair(x) for t, _c, x in trail if t == now and x is not None]
    cop, xcom = _cm_pair(tick.get("cop_m")), _cm_pair(tick.get("xcom_m"))
    series[3]["data"] = [cop] if cop else []
    series[4]["data"] = [xcom] if xcom else []
    chart.update()
    seen["plot_updates"] += 1


LiveRefresh = Callable[[], None]
