"""The safety monitor: every balance-loop tick, decide whether the world must calm down.

The core is a pure function, :func:`evaluate`::

    memory, verdict = evaluate(memory, state, status, envelope)

It reads one :class:`~vrbalance.balance.state.BalanceState`, a
:class:`MonitorStatus` snapshot (device and operator state the balance state
does not hold) and the patient's :class:`~vrbalance.director.envelope.SafetyEnvelope`,
plus an explicit :class:`MonitorMemory` for dwell times and filters, and
returns the new memory and a :class:`Verdict`. It reads no clock (time is
``state.t_s``), does no I/O and starts nothing, so it is exact under test and
replay. :class:`SafetyMonitor` wraps it for the balance loop:
``monitor.step(state) -> Verdict`` in the same tick that produced the state.

Responses are graded (:class:`Response`): ``WARN`` the operator; ``CALM``
(freeze perturbations and fade to a still scene with a level horizon, which the
world does on its next frame); ``STOP_TRIAL``. A higher response includes the
lower ones' actions. ``CALM`` and ``STOP_TRIAL`` *latch*: once reached they
stay until the operator or the session resets the monitor
(:meth:`SafetyMonitor.request_reset`, normally at the start of the next trial),
even if the cause clears, so a patient who recovers from a near-fall is not
thrown straight back into a moving scene. ``WARN`` does not latch.

There is deliberately no way to disable the monitor or a trigger: thresholds
can be tuned within :data:`~vrbalance.director.envelope.HARD_CAPS`, never
switched off.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
from dataclasses import dataclass

from vrbalance.balance.state import BalanceState
from vrbalance.director.envelope import SafetyEnvelope
from vrbalance.events import Event, Severity

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

__all__ = [
    "HEAD_REFERENCE_TAU_S",
    "HEAD_SPEED_TAU_S",
    "HEAD_VELOCITY_TAU_S",
    "LOAD_REFERENCE_TAU_S",
    "TRIGGER_RESPONSE",
    "Corridor",
    "HeadsetStatus",
    "MonitorMemory",
    "MonitorStatus",
    "PlateStatus",
    "Response",
    "SafetyMonitor",
    "Trigger",
    "Verdict",
    "evaluate",
    "plate_status",
]

#: Time constant of the low-pass filter on the head's vertical velocity, in s.
#: 50 ms removes tracking jitter (a 0.1 mm jitter at 90 Hz is ~1 cm/s raw) yet
#: a fall at 1 m/s crosses 0.6 m/s about 50 ms after reaching its speed.
HEAD_VELOCITY_TAU_S = 0.05
#: Time constant of the running standing head height, in s. 1 s follows slow,
#: deliberate movements (a knee bend at 0.1 m/s lags by only 0.1 m) but not a
#: fall, which drops the head by 0.15 m in well under 0.5 s.
HEAD_REFERENCE_TAU_S = 1.0
#: Time constant of the low-pass filter on the head's horizontal speed while
#: walking, in s: it smooths the step-by-step sway of the head (a few cm/s)
#: yet follows a stumble's lunge within a fraction of a second.
HEAD_SPEED_TAU_S = 0.1
#: Time constant of the running standing load on the plate, in s.
LOAD_REFERENCE_TAU_S = 2.0
#: A trigger that clears and returns within this time does not raise a second
#: onset event (a margin hovering at a threshold would otherwise flood the log).
EVENT_HOLD_S = 0.5
_EPS_S = 1e-9


class Response(enum.IntEnum):
    """What the monitor asks for; ordered, and each includes the actions below it."""

    NONE = 0
    WARN = 1
    CALM = 2
    STOP_TRIAL = 3

    @property
    def label(self) -> str:
        """Lower-case name used in events: ``"none"``, ``"warn"``, ``"calm"``, ``"stop_trial"``."""
        return self.name.lower()


class PlateStatus(enum.Enum):
    """The force plate's state as the device layer reports it."""

    NONE = "none"  # no plate in this session (head-only): plate triggers do not apply
    STREAMING = "streaming"
    STALLED = "stalled"  # open but frames are late
    LOST = "lost"  # disconnected or failed


class HeadsetStatus(enum.Enum):
    """The headset session's state (OpenXR session state, simplified)."""

    NONE = "none"  # no headset: desktop window or scripted head
    FOCUSED = "focused"  # the patient sees the scene and input goes to it
    UNFOCUSED = "unfocused"  # visible or synchronized but not focused (system menu, removed)
    LOST = "lost"  # stopping, exiting or loss pending


class Trigger(enum.Enum):
    """Every condition the monitor checks; the value is the event ``kind``."""

    MARGIN_NEAR_EDGE = "margin_near_edge"
    MARGIN_AT_EDGE = "margin_at_edge"
    MARGIN_AT_EDGE_LONG = "margin_at_edge_long"
    HEAD_FALL_VELOCITY = "head_fall_velocity"
    HEAD_HEIGHT_DROP = "head_height_drop"
    CONTACT_LOST = "contact_lost"
    LOAD_COLLAPSE = "load_collapse"
    COP_OFF_BOS = "cop_off_bos"
    COP_JUMP = "cop_jump"
    PLATE_STALE = "plate_stale"
    PLATE_STALLED = "plate_stalled"
    PLATE_LOST = "plate_lost"
    HEAD_LOST = "head_lost"
    HEAD_STALE = "head_stale"
    HEADSET_UNFOCUSED = "headset_unfocused"
    HEADSET_LOST = "headset_lost"
    EMERGENCY_STOP = "emergency_stop"
    TRIAL_TIME_LIMIT = "trial_time_limit"
    SESSION_TIME_LIMIT = "session_time_limit"
    LEFT_CORRIDOR = "left_corridor"
    HEAD_SPEED = "head_speed"


#: The response each trigger asks for (documented in ``docs/safety.md``).
TRIGGER_RESPONSE: dict[Trigger, Response] = {
    Trigger.MARGIN_NEAR_EDGE: Response.WARN,
    Trigger.MARGIN_AT_EDGE: Response.CALM,
    Trigger.MARGIN_AT_EDGE_LONG: Response.STOP_TRIAL,
    Trigger.HEAD_FALL_VELOCITY: Response.STOP_TRIAL,
    Trigger.HEAD_HEIGHT_DROP: Response.STOP_TRIAL,
    Trigger.CONTACT_LOST: Response.STOP_TRIAL,
    Trigger.LOAD_COLLAPSE: Response.STOP_TRIAL,
    Trigger.COP_OFF_BOS: Response.STOP_TRIAL,
    Trigger.COP_JUMP: Response.STOP_TRIAL,
    Trigger.PLATE_STALE: Response.CALM,
    Trigger.PLATE_STALLED: Response.CALM,
    Trigger.PLATE_LOST: Response.STOP_TRIAL,
    Trigger.HEAD_LOST: Response.CALM,
    Trigger.HEAD_STALE: Response.CALM,
    Trigger.HEADSET_UNFOCUSED: Response.CALM,
    Trigger.HEADSET_LOST: Response.STOP_TRIAL,
    Trigger.EMERGENCY_STOP: Response.STOP_TRIAL,
    Trigger.TRIAL_TIME_LIMIT: Response.STOP_TRIAL,
    Trigger.SESSION_TIME_LIMIT: Response.STOP_TRIAL,
    Trigger.LEFT_CORRIDOR: Response.STOP_TRIAL,
    Trigger.HEAD_SPEED: Response.CALM,
}
_TRIGGERS: tuple[Trigger, ...] = tuple(Trigger)
_INDEX: dict[Trigger, int] = {t: i for i, t in enumerate(_TRIGGERS)}
_SEVERITY: dict[Response, Severity] = {
    Response.NONE: "info",
    Response.WARN: "warning",
    Response.CALM: "warning",
    Response.STOP_TRIAL: "alarm",
}


@dataclass(frozen=True, slots=True)
class Corridor:
    """The marked walking corridor of a walking trial, in stage space (core frame).

    The line runs from the origin along +y for ``length_m``; the corridor is
    the line widened by the envelope's ``corridor_half_width_m`` on both
    sides and at both ends. While a corridor is set the patient walks, so the
    margin-of-stability triggers (which refer to a fixed base of support) do
    not apply; the head's drop, its fall velocity, its horizontal speed and
    the corridor do.

    Attributes
    ----------
    length_m : float
        Length of the walking line, m.
    """

    length_m: float


@dataclass(frozen=True, slots=True)
class MonitorStatus:
    """Device and operator state the monitor needs besides the balance state.

    The defaults are the *strict* ones: a loop that never sets the status is
    treated as having a plate and a tracked head, so missing data calms the
    world rather than going unnoticed.

    Attributes
    ----------
    plate : PlateStatus
        The plate's state; ``PlateStatus.NONE`` for a head-only session.
    headset : HeadsetStatus
        The headset's state; ``HeadsetStatus.NONE`` on the desktop.
    head_expected : bool
        Whether a head pose must be present every tick (any head source:
        headset, desktop stand-in, scripted).
    emergency_stop : bool
        The operator's emergency stop is pressed (held until released).
    trial_elapsed_s : float or None
        Time since the trial began, in s; ``None`` between trials.
    session_elapsed_s : float or None
        Time since the session began, in s.
    corridor : Corridor or None
        A walking trial's corridor (``None``: standing trials).
    """

    plate: PlateStatus = PlateStatus.STREAMING
    headset: HeadsetStatus = HeadsetStatus.NONE
    head_expected: bool = True
    emergency_stop: bool = False
    trial_elapsed_s: float | None = None
    session_elapsed_s: float | None = None
    corridor: Corridor | None = None


#: The plate driver's states (``ForcePlate.state.value``, see
#: :class:`vrbalance.devices.driver.PlateState`) as the monitor sees them.
_PLATE_STATES: dict[str, PlateStatus] = {
    "none": PlateStatus.NONE,
    "connecting": PlateStatus.STREAMING,
    "streaming": PlateStatus.STREAMING,
    "stalled": PlateStatus.STALLED,
    "lost": PlateStatus.LOST,
    "closed": PlateStatus.LOST,
}


def plate_status(state_name: str | None) -> PlateStatus:
    """The :class:`PlateStatus` for the plate driver's state, by name.

    The one mapping every loop uses (the session runner, the demo), so a
    driver state means the same thing to the monitor everywhere. It takes the
    state's name (``ForcePlate.state.value``) rather than the driver's enum
    so that the director package stays free of device imports.

    ========================  ====================  =====================================
    driver state              ``PlateStatus``       what the monitor then does
    ========================  ====================  =====================================
    ``None`` / ``"none"``     ``NONE``              no plate in this session: plate
                                                    triggers do not apply
    ``"connecting"``          ``STREAMING``         frames are expected: judged by their
                                                    age (``plate_stale``)
    ``"streaming"``           ``STREAMING``         judged by frame age and contents
    ``"stalled"``             ``STALLED``           ``plate_stalled`` (calm)
    ``"lost"``, ``"closed"``  ``LOST``              ``plate_lost`` (stop trial)
    ========================  ====================  =====================================

    Why ``"connecting"`` is ``STREAMING``: the driver is connecting between
    opening the port (or reopening it after a loss) and the first good frame.
    The port is open, so the plate is not lost, and it has not fallen silent
    after streaming, so it is not stalled; but a plate the monitor judges is
    one whose frames are due, so the frame-age check must apply:
    ``STREAMING`` keeps it (``plate_stale``, "no plate frame"), whereas
    ``NONE`` would switch every plate trigger off. Waiting for the first frame
    without calming is the start gate's job (the runner's connecting ticks,
    the demo's connecting status), not the monitor's. ``"closed"`` is
    ``LOST``: a loop still ticking on a closed plate has lost it.

    Parameters
    ----------
    state_name : str or None
        ``ForcePlate.state.value``; ``None`` (or ``"none"``) when the
        session has no plate.

    Returns
    -------
    PlateStatus

    Raises
    ------
    ValueError
        For an unknown name: mapping it to anything would either hide a lost
        plate or invent one, so it is a programming error, named.
    """
    if state_name is None:
        return PlateStatus.NONE
    try:
        return _PLATE_STATES[state_name]
    except KeyError:
        raise ValueError(
            f"plate state: expected one of {sorted(_PLATE_STATES)} or None, got {state_name!r}"
        ) from None


@dataclass(frozen=True, slots=True)
class MonitorMemory:
    """What the monitor remembers between ticks (dwell timers, filters, latch).

    A fresh ``MonitorMemory()`` is the state after a reset.

    Attributes
    ----------
    t_s : float or None
        Time of the last evaluated tick.
    edge_since_s, edge_since_tick : float or int or None
        When the margin first went below ``edge_margin_m`` (the dwell start).
    head_t_s, head_z_m : float or None
        Sample time and height of the last head pose used.
    head_vz_mps : float
        Low-pass filtered vertical head velocity (negative = down).
    head_ref_z_m : float or None
        Running standing head height.
    head_xy_m : tuple of 2 float or None
        Horizontal head position of the last pose used (walking trials).
    head_speed_mps : float
        Low-pass filtered horizontal head speed (walking trials).
    was_loaded : bool
        The plate has been loaded since the reset (contact can be lost).
    load_ref_n : float or None
        Running standing load.
    cop_m : tuple of 2 float or None
        CoP of the previous tick (for jumps).
    recent_s : tuple of (float or None)
        Per trigger (in :class:`Trigger` order), the last tick time it was active.
    latched : Response
        The latched response (``NONE`` or at least ``CALM``).
    latched_cause : Trigger or None
        The trigger that set the latch.
    latched_t_s : float or None
        When.
    """

    t_s: float | None = None
    edge_since_s: float | None = None
    edge_since_tick: int | None = None
    head_t_s: float | None = None
    head_z_m: float | None = None
    head_vz_mps: float = 0.0
    head_ref_z_m: float | None = None
    head_xy_m: tuple[float, float] | None = None
    head_speed_mps: float = 0.0
    was_loaded: bool = False
    load_ref_n: float | None = None
    cop_m: tuple[float, float] | None = None
    recent_s: tuple[float | None, ...] = (None,) * len(_TRIGGERS)
    latched: Response = Response.NONE
    latched_cause: Trigger | None = None
    latched_t_s: float | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the monitor decided at one tick.

    Attributes
    ----------
    tick : int
        The balance-loop tick it refers to.
    t_s : float
        That tick's time, in s.
    response : Response
        What the world and operator must do now: the latched response or the
        current one, whichever is higher.
    triggers : frozenset of Trigger
        Conditions active at this tick.
    cause : Trigger or None
        What set the latch (or, when nothing is latched, the strongest active
        trigger).
    events : tuple of Event
        Events new at this tick (trigger onsets, response changes, resets).
    """

    tick: int
    t_s: float
    response: Response
    triggers: frozenset[Trigger]
    cause: Trigger | None
    events: tuple[Event, ...] = ()

    @property
    def warn(self) -> bool:
        """The operator must be alerted (true for every response above ``NONE``)."""
        return self.response >= Response.WARN

    @property
    def calm(self) -> bool:
        """The world must freeze perturbations and fade to a still, level scene."""
        return self.response >= Response.CALM

    @property
    def stop_trial(self) -> bool:
        """The trial must stop."""
        return self.response >= Response.STOP_TRIAL


def _ema(previous: float, value: float, dt_s: float, tau_s: float) -> float:
    """One step of a first-order low-pass filter with time constant ``tau_s``."""
    alpha = dt_s / (tau_s + dt_s)
    return previous + alpha * (value - previous)


def evaluate(
    memory: MonitorMemory,
    state: BalanceState,
    status: MonitorStatus,
    envelope: SafetyEnvelope,
) -> tuple[MonitorMemory, Verdict]:
    """Judge one balance-loop tick: the pure core of the safety monitor.

    Parameters
    ----------
    memory : MonitorMemory
        The memory returned for the previous tick (``MonitorMemory()`` after a reset).
    state : BalanceState
        This tick's snapshot (core frame, SI units; margins positive inside the BoS).
    status : MonitorStatus
        Device and operator state at this tick.
    envelope : SafetyEnvelope
        The patient's limits; thresholds come from ``envelope.monitor``.

    Returns
    -------
    memory : MonitorMemory
        To pass to the next call.
    verdict : Verdict
        The response for this tick. A trigger whose dwell has expired (or has
        no dwell) raises its response in the verdict of the *same* tick.
    """
    th = envelope.monitor
    t_s = state.t_s
    tick = state.tick
    if memory.t_s is not None and t_s < memory.t_s:
        # Time went back (a replay restarted without a reset): restart the timers
        # and filters, which would otherwise compare against the future, but keep
        # the latch: going back in time must not release a calm.
        memory = MonitorMemory(
            latched=memory.latched,
            latched_cause=memory.latched_cause,
            latched_t_s=memory.latched_t_s,
        )
    dt_s = 0.0 if memory.t_s is None else t_s - memory.t_s
    hits: list[tuple[Trigger, str, dict[str, object]]] = []

    # -- operator and session --------------------------------------------------------
    if status.emergency_stop:
        hits.append((Trigger.EMERGENCY_STOP, "operator pressed the emergency stop", {}))
    if status.trial_elapsed_s is not None and status.trial_elapsed_s > envelope.max_trial_s:
        hits.append(
            (
                Trigger.TRIAL_TIME_LIMIT,
                f"trial ran {status.trial_elapsed_s:.1f} s > max_trial_s {envelope.max_trial_s:g}",
                {"trial_elapsed_s": status.trial_elapsed_s, "max_trial_s": envelope.max_trial_s},
            )
        )
    if status.session_elapsed_s is not None and status.session_elapsed_s > envelope.max_session_s:
        hits.append(
            (
                Trigger.SESSION_TIME_LIMIT,
                f"session ran {status.session_elapsed_s:.1f} s > max_session_s "
                f"{envelope.max_session_s:g}",
                {
                    "session_elapsed_s": status.session_elapsed_s,
                    "max_session_s": envelope.max_session_s,
                },
            )
        )

    # -- headset ---------------------------------------------------------------------
    if status.headset is HeadsetStatus.UNFOCUSED:
        hits.append((Trigger.HEADSET_UNFOCUSED, "headset not focused", {}))
    elif status.headset is HeadsetStatus.LOST:
        hits.append((Trigger.HEADSET_LOST, "headset session lost", {}))

    # -- margin of stability (XCoM, else CoP) -----------------------------------------
    margin = state.margin_xcom_m
    margin_name = "margin_xcom_m"
    if margin is None:
        margin = state.margin_cop_m
        margin_name = "margin_cop_m"
    if status.corridor is not None:
        margin = None  # walking: no fixed base of support for a margin to refer to
    edge_since_s = memory.edge_since_s
    edge_since_tick = memory.edge_since_tick
    if margin is None or margin >= th.edge_margin_m:
        edge_since_s = None
        edge_since_tick = None
    elif edge_since_s is None:
        edge_since_s = t_s
        edge_since_tick = tick
    if margin is not None and margin < th.warn_margin_m:
        hits.append(
            (
                Trigger.MARGIN_NEAR_EDGE,
                f"{margin_name} {margin:.3f} m < warn_margin_m {th.warn_margin_m:g}",
                {margin_name: margin, "warn_margin_m": th.warn_margin_m},
            )
        )
    if edge_since_s is not None and margin is not None:
        dwell_s = t_s - edge_since_s
        values: dict[str, object] = {
            margin_name: margin,
            "edge_margin_m": th.edge_margin_m,
            "dwell_s": dwell_s,
            "since_t_s": edge_since_s,
            "since_tick": edge_since_tick,
        }
        if dwell_s + _EPS_S >= th.margin_dwell_s:
            hits.append(
                (
                    Trigger.MARGIN_AT_EDGE,
                    f"{margin_name} {margin:.3f} m < {th.edge_margin_m:g} m for "
                    f"{dwell_s:.3f} s (dwell {th.margin_dwell_s:g} s)",
                    values | {"margin_dwell_s": th.margin_dwell_s},
                )
            )
        if dwell_s + _EPS_S >= th.stop_dwell_s:
            hits.append(
                (
                    Trigger.MARGIN_AT_EDGE_LONG,
                    f"{margin_name} {margin:.3f} m < {th.edge_margin_m:g} m for "
                    f"{dwell_s:.3f} s (stop dwell {th.stop_dwell_s:g} s)",
                    values | {"stop_dwell_s": th.stop_dwell_s},
                )
            )

    # -- head: tracking, fall-like motion ---------------------------------------------
    head_t_s = memory.head_t_s
    head_z_m = memory.head_z_m
    head_vz = memory.head_vz_mps
    head_ref = memory.head_ref_z_m
    head_xy = memory.head_xy_m
    head_speed = memory.head_speed_mps
    corridor = status.corridor
    pos = state.head_position_m
    if pos is None:
        if status.head_expected:
            hits.append((Trigger.HEAD_LOST, "no head pose", {}))
    else:
        age_s = state.head_age_s
        if age_s is not None and age_s > th.head_stale_s:
            hits.append(
                (
                    Trigger.HEAD_STALE,
                    f"head pose {age_s * 1e3:.0f} ms old > head_stale_s {th.head_stale_s:g}",
                    {"head_age_s": age_s, "head_stale_s": th.head_stale_s},
                )
            )
        sample_t_s = t_s - (age_s or 0.0)
        z_m = pos[2]
        if corridor is not None:
            half = th.corridor_half_width_m
            x_m, y_m = pos[0], pos[1]
            if abs(x_m) > half or y_m < -half or y_m > corridor.length_m + half:
                hits.append(
                    (
                        Trigger.LEFT_CORRIDOR,
                        f"head at ({x_m:.2f}, {y_m:.2f}) m is outside the walking corridor "
                        f"(line 0-{corridor.length_m:g} m, +/- {half:g} m)",
                        {
                            "head_x_m": x_m,
                            "head_y_m": y_m,
                            "length_m": corridor.length_m,
                            "corridor_half_width_m": half,
                        },
                    )
                )
        if head_t_s is None or head_z_m is None or head_ref is None:
            head_ref = z_m
            head_vz = 0.0
            head_speed = 0.0
            head_xy = (pos[0], pos[1])
            head_t_s, head_z_m = sample_t_s, z_m
        elif sample_t_s > head_t_s:
            h_dt = sample_t_s - head_t_s
            if corridor is not None and head_xy is not None:
                raw = math.hypot(pos[0] - head_xy[0], pos[1] - head_xy[1]) / h_dt
                head_speed = _ema(head_speed, raw, h_dt, HEAD_SPEED_TAU_S)
                if head_speed > th.head_speed_mps:
                    hits.append(
                        (
                            Trigger.HEAD_SPEED,
                            f"head moving at {head_speed:.2f} m/s > {th.head_speed_mps:g} m/s "
                            "while walking",
                            {"head_speed_mps": head_speed, "threshold_mps": th.head_speed_mps},
                        )
                    )
            head_xy = (pos[0], pos[1])
            head_vz = _ema(head_vz, (z_m - head_z_m) / h_dt, h_dt, HEAD_VELOCITY_TAU_S)
            drop_ref = head_ref
            head_ref = _ema(head_ref, z_m, h_dt, HEAD_REFERENCE_TAU_S)
            head_t_s, head_z_m = sample_t_s, z_m
            if -head_vz > th.head_down_velocity_mps:
                hits.append(
                    (
                        Trigger.HEAD_FALL_VELOCITY,
                        f"head moving down at {-head_vz:.2f} m/s > "
                        f"{th.head_down_velocity_mps:g} m/s",
                        {
                            "head_down_velocity_mps": -head_vz,
                            "threshold_mps": th.head_down_velocity_mps,
                            "head_z_m": z_m,
                            "sample_t_s": sample_t_s,
                        },
                    )
                )
            drop_m = drop_ref - z_m
            if drop_m > th.head_drop_m:
                hits.append(
                    (
                        Trigger.HEAD_HEIGHT_DROP,
                        f"head {drop_m:.2f} m below its standing height > {th.head_drop_m:g} m",
                        {
                            "head_drop_m": drop_m,
                            "threshold_m": th.head_drop_m,
                            "head_z_m": z_m,
                            "standing_z_m": drop_ref,
                            "sample_t_s": sample_t_s,
                        },
                    )
                )

    # -- plate: inputs, contact, steps ------------------------------------------------
    was_loaded = memory.was_loaded
    load_ref = memory.load_ref_n
    cop_prev = memory.cop_m
    cop_now: tuple[float, float] | None = None
    if status.plate is PlateStatus.LOST:
        hits.append((Trigger.PLATE_LOST, "force plate lost", {}))
    elif status.plate is not PlateStatus.NONE:
        if status.plate is PlateStatus.STALLED:
            hits.append((Trigger.PLATE_STALLED, "force plate stalled", {}))
        age_s = state.plate_age_s
        if age_s is None or age_s > th.plate_stale_s:
            hits.append(
                (
                    Trigger.PLATE_STALE,
                    "no plate frame"
                    if age_s is None
                    else f"plate frame {age_s * 1e3:.0f} ms old > {th.plate_stale_s:g} s",
                    {"plate_age_s": age_s, "plate_stale_s": th.plate_stale_s},
                )
            )
        if state.plate_loaded:
            force = state.vertical_force_n
            if force is not None:
                if load_ref is None:
                    load_ref = force
                elif force < th.load_collapse_fraction * load_ref:
                    hits.append(
                        (
                            Trigger.LOAD_COLLAPSE,
                            f"plate load {force:.0f} N < {th.load_collapse_fraction:g} x "
                            f"standing load {load_ref:.0f} N",
                            {
                                "vertical_force_n": force,
                                "standing_force_n": load_ref,
                                "load_collapse_fraction": th.load_collapse_fraction,
                            },
                        )
                    )
                elif dt_s > 0.0:
                    load_ref = _ema(load_ref, force, dt_s, LOAD_REFERENCE_TAU_S)
            was_loaded = True
            cop_now = state.cop_m
            if state.margin_cop_m is not None and state.margin_cop_m < -th.cop_off_bos_m:
                hits.append(
                    (
                        Trigger.COP_OFF_BOS,
                        f"CoP {-state.margin_cop_m:.3f} m outside the base of support",
                        {"margin_cop_m": state.margin_cop_m, "cop_off_bos_m": th.cop_off_bos_m},
                    )
                )
            if cop_now is not None and cop_prev is not None:
                jump_m = math.hypot(cop_now[0] - cop_prev[0], cop_now[1] - cop_prev[1])
                if jump_m > th.cop_jump_m:
                    hits.append(
                        (
                            Trigger.COP_JUMP,
                            f"CoP jumped {jump_m:.3f} m in one tick > {th.cop_jump_m:g} m",
                            {"cop_jump_m": jump_m, "threshold_m": th.cop_jump_m},
                        )
                    )
        elif was_loaded:
            hits.append(
                (
                    Trigger.CONTACT_LOST,
                    "plate unloaded (stepped off or fell)",
                    {"vertical_force_n": state.vertical_force_n},
                )
            )

    # -- responses, latch, events -----------------------------------------------------
    events: list[Event] = []
    recent = memory.recent_s
    current = Response.NONE
    strongest: Trigger | None = None
    active: frozenset[Trigger] = frozenset()
    if hits:
        active = frozenset(h[0] for h in hits)
        new_recent = list(recent)
        for trigger, message, values in hits:
            response = TRIGGER_RESPONSE[trigger]
            if response > current:
                current, strongest = response, trigger
            i = _INDEX[trigger]
            last = recent[i]
            if last is None or t_s - last > EVENT_HOLD_S or t_s < last:
                events.append(
                    Event(
                        t_s=t_s,
                        source="safety",
                        kind=trigger.value,
                        message=message,
                        severity=_SEVERITY[response],
                        values={"tick": tick, "response": response.label, **values},
                    )
                )
            new_recent[i] = t_s
        recent = tuple(new_recent)

    latched = memory.latched
    latched_cause = memory.latched_cause
    latched_t_s = memory.latched_t_s
    if current >= Response.CALM and current > latched and strongest is not None:
        since_t_s = t_s
        since_tick = tick
        if strongest in (Trigger.MARGIN_AT_EDGE, Trigger.MARGIN_AT_EDGE_LONG):
            since_t_s = edge_since_s if edge_since_s is not None else t_s
            since_tick = edge_since_tick if edge_since_tick is not None else tick
        events.append(
            Event(
                t_s=t_s,
                source="safety",
                kind=current.label,
                message=f"{current.label} because {strongest.value}",
                severity=_SEVERITY[current],
                values={
                    "tick": tick,
                    "cause": strongest.value,
                    "previous_response": latched.label,
                    "crossing_t_s": since_t_s,
                    "crossing_tick": since_tick,
                    "latency_s": t_s - since_t_s,
                    "latency_ticks": tick - since_tick,
                },
            )
        )
        latched, latched_cause, latched_t_s = current, strongest, t_s
        # Said in session (and trial) time, as the reports are: the loop clock's
        # raw value is the machine's uptime, meaningless to the operator.
        if status.session_elapsed_s is not None:
            log.warning(
                "safety %s at %.1f s into the session (%.1f s into the trial): %s",
                current.label,
                status.session_elapsed_s,
                status.trial_elapsed_s if status.trial_elapsed_s is not None else math.nan,
                strongest.value,
            )
        else:
            log.warning("safety %s: %s", current.label, strongest.value)

    response = max(latched, current)
    cause = latched_cause if latched >= current and latched_cause is not None else strongest
    new_memory = MonitorMemory(
        t_s=t_s,
        edge_since_s=edge_since_s,
        edge_since_tick=edge_since_tick,
        head_t_s=head_t_s,
        head_z_m=head_z_m,
        head_vz_mps=head_vz,
        head_ref_z_m=head_ref,
        head_xy_m=head_xy,
        head_speed_mps=head_speed,
        was_loaded=was_loaded,
        load_ref_n=load_ref,
        cop_m=cop_now,
        recent_s=recent,
        latched=latched,
        latched_cause=latched_cause,
        latched_t_s=latched_t_s,
    )
    return new_memory, Verdict(
        tick=tick, t_s=t_s, response=response, triggers=active, cause=cause, events=tuple(events)
    )


class SafetyMonitor:
    """The stateful wrapper the balance loop calls every tick.

    ``step(state)`` (or calling the monitor) runs :func:`evaluate` with the
    latest status and the patient's envelope, keeps the memory, and returns
    the :class:`Verdict`. Status updates and operator requests may come from
    other threads: each is a single attribute assignment of an immutable
    value, which the next tick reads whole, so no lock is needed and the tick
    never waits.

    Parameters
    ----------
    envelope : SafetyEnvelope, optional
        The patient's limits (default: ``SafetyEnvelope()``, the built-in defaults).
    status : MonitorStatus, optional
        Initial device and operator status (default: the strict one).

    Examples
    --------
    >>> monitor = SafetyMonitor(status=MonitorStatus(plate=PlateStatus.NONE))
    >>> verdict = monitor.step(state)  # doctest: +SKIP
    >>> if verdict.calm: world.calm()  # doctest: +SKIP
    """

    def __init__(
        self, envelope: SafetyEnvelope | None = None, *, status: MonitorStatus | None = None
    ) -> None:
        self._envelope = envelope if envelope is not None else SafetyEnvelope()
        if not isinstance(self._envelope, SafetyEnvelope):
            raise TypeError(f"envelope: expected SafetyEnvelope, got {type(envelope).__name__}")
        self._status = status if status is not None else MonitorStatus()
        self._memory = MonitorMemory()
        self._estop_requested = False
        self._reset_requested = False
        self._last: Verdict | None = None

    @property
    def envelope(self) -> SafetyEnvelope:
        """The patient's limits (fixed for the monitor's life: make a new monitor to change)."""
        return self._envelope

    @property
    def status(self) -> MonitorStatus:
        """The status the next tick will use."""
        return self._status

    @property
    def memory(self) -> MonitorMemory:
        """The memory after the last tick (read-only snapshot)."""
        return self._memory

    @property
    def last_verdict(self) -> Verdict | None:
        """The verdict of the last tick, ``None`` before the first."""
        return self._last

    def set_status(self, status: MonitorStatus) -> None:
        """Replace the whole status (takes effect at the next tick)."""
        if not isinstance(status, MonitorStatus):
            raise TypeError(f"status: expected MonitorStatus, got {type(status).__name__}")
        self._status = status

    def update_status(self, **changes: object) -> MonitorStatus:
        """Change some status fields (``plate=PlateStatus.LOST``); returns the new status.

        Use from one thread only (read-modify-write); for the emergency stop,
        which may come from anywhere, use :meth:`request_emergency_stop`.
        """
        self._status = dataclasses.replace(self._status, **changes)  # type: ignore[arg-type]
        return self._status

    def request_emergency_stop(self) -> None:
        """Latch an emergency stop from any thread; the next tick stops the trial.

        It stays pressed until :meth:`request_reset`.
        """
        self._estop_requested = True

    def request_reset(self) -> None:
        """Ask the next tick to clear the latch, dwell timers and filters.

        The operator or session calls this to start a new trial after a calm
        or stop. The tick that performs it emits a ``monitor_reset`` event and
        evaluates afresh, so a cause still present triggers again at once
        (after its dwell).
        """
        self._reset_requested = True

    def step(self, state: BalanceState, status: MonitorStatus | None = None) -> Verdict:
        """Judge one tick; same tick, no waiting, no I/O.

        Parameters
        ----------
        state : BalanceState
            The snapshot the loop just published.
        status : MonitorStatus, optional
            If given, replaces the stored status first (the loop may pass it
            each tick instead of calling :meth:`set_status`).
        """
        if status is not None:
            self._status = status
        reset_event: Event | None = None
        if self._reset_requested:
            self._reset_requested = False
            self._estop_requested = False
            previous = self._memory.latched
            self._memory = MonitorMemory()
            reset_event = Event(
                t_s=state.t_s,
                source="safety",
                kind="monitor_reset",
                message=f"monitor reset (was {previous.label})",
                values={"tick": state.tick, "previous_response": previous.label},
            )
        current_status = self._status
        if self._estop_requested and not current_status.emergency_stop:
            current_status = dataclasses.replace(current_status, emergency_stop=True)
        self._memory, verdict = evaluate(self._memory, state, current_status, self._envelope)
        if reset_event is not None:
            verdict = dataclasses.replace(verdict, events=(reset_event, *verdict.events))
        self._last = verdict
        return verdict

    __call__ = step
