"""Lab Streaming Layer outlets: the balance state and the session's events, live.

Researchers record vrbalance beside EEG, EMG or motion capture with LSL
(LabRecorder writes XDF). ``vrbalance run --lsl`` and ``vrbalance demo --lsl``
open two outlets:

``vrbalance-balance`` (type ``Balance``, one sample per balance-loop tick, at
    the loop's nominal rate, ``float64``)
    one channel per value of :data:`BALANCE_CHANNELS`: CoP, CoM and XCoM
    (x right, y anterior, m), the two margins of stability (m), the vertical
    load (N), the safety verdict (0 none, 1 warn, 2 calm, 3 stop trial) and
    the difficulty level. A value the loop does not have this tick (no plate,
    no head pose) is NaN.
``vrbalance-markers`` (type ``Markers``, irregular rate, one ``string``
    channel)
    every event the session records, as ``source/kind: message`` (trial
    start and end, safety triggers and responses, level changes, operator
    commands, device changes).

The stream metadata follows the XDF conventions (``desc/channels/channel``
with ``label``, ``unit``, ``type``; ``desc/acquisition``; the verdict codes
under ``desc/verdict_codes``), so an XDF reader shows names and units.

Time: each sample carries the time of its loop tick mapped onto LSL's clock
(``pylsl.local_clock()``), ``lsl_t = t_s + offset``, the offset measured
once when the outlets open (the pair of readings with the narrowest bracket
of a few). On Linux both clocks read ``CLOCK_MONOTONIC`` and the offset is
~0; with an injected clock (tests, replay) the mapping is what makes the
stamps right.

The outlets are a *sink*: the loop's tick only enqueues the snapshot it has
already published (:meth:`LslOutlets.tick`, :meth:`LslOutlets.event`: a
``deque.append``), and the outlets' own thread pushes to liblsl every 10 ms,
in chunks of whatever has queued. Nothing of LSL runs inside the tick (``docs/lsl.md``
gives the measured cost per tick).

No patient data goes out: the streams carry numbers, event texts and the
software's name, never the patient id or the session folder. And the streams
stay on this machine unless the user asks otherwise (``--lsl-network``): LSL
cannot authenticate, so :mod:`vrbalance.sessions.lsl_scope` keeps liblsl's
discovery and sockets on loopback.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from vrbalance import __version__
from vrbalance.clock import Clock
from vrbalance.errors import DeviceError
from vrbalance.events import Event
from vrbalance.sessions.lsl_scope import (
    NETWORK_WARNING,
    confine_new_sockets,
    machine_config,
    socket_fds,
)

log = logging.getLogger(__name__)

BALANCE_CHANNELS: tuple[tuple[str, str, str], ...] = (
    ("CoP_X", "meters", "CoP"),
    ("CoP_Y", "meters", "CoP"),
    ("CoM_X", "meters", "CoM"),
    ("CoM_Y", "meters", "CoM"),
    ("XCoM_X", "meters", "XCoM"),
    ("XCoM_Y", "meters", "XCoM"),
    ("MarginXCoM", "meters", "MarginOfStability"),
    ("MarginCoP", "meters", "MarginOfStability"),
    ("VerticalLoad", "newtons", "Force"),
    ("Verdict", "code", "SafetyVerdict"),
    ("Level", "level", "Difficulty"),
)
"""(label, unit, type) of each channel of the balance stream, in order."""
VERDICT_CODES: dict[str, int] = {"none": 0, "warn": 1, "calm": 2, "stop_trial": 3}
"""The Verdict channel's values (the safety monitor's responses, by label)."""
_NAN = math.nan


def _pylsl() -> Any:
    try:
        import pylsl
    except (ImportError, RuntimeError) as exc:  # RuntimeError: liblsl not loadable
        raise DeviceError(f"--lsl: Lab Streaming Layer is not available ({exc})") from exc
    return pylsl


def _pair(value: tuple[float, float] | None) -> tuple[float, float]:
    return (_NAN, _NAN) if value is None else (float(value[0]), float(value[1]))


def _num(value: float | int | None) -> float:
    return _NAN if value is None else float(value)


def balance_sample(state: Any, response: str, level: int | None) -> list[float]:
    """One balance-stream sample (channel order :data:`BALANCE_CHANNELS`) from a state."""
    return [
        *_pair(state.cop_m),
        *_pair(state.com_m),
        *_pair(state.xcom_m),
        _num(state.margin_xcom_m),
        _num(state.margin_cop_m),
        _num(state.vertical_force_n),
        float(VERDICT_CODES.get(response, _NAN)) if response else _NAN,
        _num(level),
    ]


def marker_text(event: Event) -> str:
    """``source/kind: message``: what the marker stream carries for ``event``."""
    return f"{event.source}/{event.kind}: {event.message}"


def measure_offset_s(clock: Clock, lsl_clock: Callable[[], float], *, tries: int = 5) -> float:
    """``lsl_clock() - clock.now_s()``, from the tightest bracketed reading of ``tries``."""
    best_width_s = math.inf
    best_offset_s = 0.0
    for _ in range(max(1, tries)):
        before = clock.now_s()
        lsl_t = lsl_clock()
        after = clock.now_s()
        if after - before < best_width_s:
            best_width_s = after - before
            best_offset_s = lsl_t - 0.5 * (before + after)
    return best_offset_s


class LslOutlets:
    """The balance and marker outlets, fed through a queue by their own thread.

    Parameters
    ----------
    clock : Clock
        The session's clock (the loop's): sample times are mapped from it.
    rate_hz : float
        The loop's rate: the balance stream's nominal rate.
    name : str
        Prefix of the stream names (``<name>-balance``, ``<name>-markers``).
    source_id : str, optional
        LSL source id prefix (lets a recorder re-find the stream after a
        restart); default ``vrbalance@<hostname>``.
    push_interval_s : float
        How often the pusher thread hands what queued to liblsl (default
        10 ms: samples reach an inlet within about that, each with its own
        tick's time stamp, so the delay never shifts the data in time).
    network : bool
        Publish to the network (``--lsl-network``): liblsl's own configuration
        (the user's ``LSLAPICFG``, ``~/lsl_api/lsl_api.cfg`` or its defaults),
        unauthenticated. Default False: the outlets stay on this machine
        (:mod:`~vrbalance.sessions.lsl_scope`).

    Notes
    -----
    A context manager; :meth:`close` is idempotent and pushes whatever was
    queued before it returns. :meth:`tick` and :meth:`event` never block: the
    outlets are a :class:`~vrbalance.sessions.runner.LiveSink` for the session
    runner, and :meth:`tick_sink` makes them a balance-loop sink (the demo).
    """

    def __init__(
        self,
        *,
        clock: Clock,
        rate_hz: float,
        name: str = "vrbalance",
        source_id: str | None = None,
        push_interval_s: float = 0.01,
        network: bool = False,
    ) -> None:
        self.network = bool(network)
        self.clock = clock
        self.rate_hz = float(rate_hz)
        self.name = name
        self.source_id = source_id or f"vrbalance@{socket.gethostname()}"
        self.offset_s = 0.0
        self.samples_pushed = 0
        self.markers_pushed = 0
        self.error: BaseException | None = None
        self.push_interval_s = float(push_interval_s)
        # deque.append is atomic under the GIL and wakes no one: the tick's only cost.
        self._pending: deque[Any] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._balance: Any = None
        self._markers: Any = None
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> LslOutlets:
        """Create both outlets (they are then visible to resolvers) and start the pusher.

        Raises
        ------
        DeviceError
            pylsl or liblsl is not available, an outlet cannot be created, or
            (without ``network``) one of its sockets cannot be kept on this
            machine.
        """
        if self._thread is not None:
            return self
        pylsl = _pylsl()
        if self.network:
            log.warning(NETWORK_WARNING)
            self._create(pylsl)
        else:
            before = socket_fds()
            with machine_config():  # read by liblsl at its first use in the process
                self._create(pylsl)
            try:
                confine_new_sockets(before)
            except DeviceError:
                self._balance = self._markers = None  # fail closed: no outlets at all
                raise
        self.offset_s = measure_offset_s(self.clock, pylsl.local_clock)
        self._thread = threading.Thread(target=self._run, name="lsl-outlets", daemon=True)
        self._thread.start()
        log.info(
            "LSL outlets %s-balance and %s-markers open (clock offset %.6f s)",
            self.name,
            self.name,
            self.offset_s,
        )
        return self

    def _create(self, pylsl: Any) -> None:
        try:
            self._balance = pylsl.StreamOutlet(self._balance_info(pylsl))
            self._markers = pylsl.StreamOutlet(self._marker_info(pylsl))
        except (RuntimeError, OSError, ValueError) as exc:
            raise DeviceError(f"--lsl: could not create the LSL outlets: {exc}") from exc

    def close(self) -> None:
        """Push what is queued, stop the thread, destroy the outlets; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5.0)
            self._thread = None
        self._balance = self._markers = None  # liblsl tears an outlet down on release

    def __enter__(self) -> LslOutlets:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- producer side: enqueue only ---------------------------------------------
    def tick(self, tick: Any) -> None:
        """Queue one tick's balance state (a :class:`~vrbalance.sessions.runner.LiveTick`).

        The runner's live-sink call; ticks while the inputs connect (no state)
        are not samples.
        """
        state = tick.state
        if state is not None:
            response = getattr(getattr(tick.verdict, "response", None), "label", "")
            self._pending.append((0, state, response, tick.level))

    def event(self, trial: int, event: Event) -> None:
        """Queue one event for the marker stream."""
        self._pending.append((1, event))

    def tick_sink(self, level: Callable[[], int | None] | None = None) -> Callable[[Any], None]:
        """A :class:`~vrbalance.realtime.pipeline.BalanceLoop` sink (the demo's wiring).

        Parameters
        ----------
        level : callable, optional
            Returns the level shown now (read each tick; default: none).
        """
        put = self._pending.append

        def sink(result: Any) -> None:
            verdict = result.verdict
            response = getattr(getattr(verdict, "response", None), "label", "")
            put((0, result.state, response, level() if level is not None else None))
            for event in getattr(verdict, "events", ()):
                put((1, event))

        return sink

    # -- the pusher thread ---------------------------------------------------------
    def _run(self) -> None:
        # Poll, do not block on the queue: a blocked consumer would be woken (a
        # futex call and a GIL hand-over) by every tick's put; polling every
        # ``push_interval_s`` costs the producer nothing and pushes bigger chunks.
        pending = self._pending
        while True:
            stop = self._stop.wait(self.push_interval_s)
            items = []
            try:
                while True:
                    items.append(pending.popleft())
            except IndexError:
                pass
            if items:
                self._push(items)
            if stop:
                return

    def _push(self, items: list[Any]) -> None:
        offset = self.offset_s
        samples: list[list[float]] = []
        stamps: list[float] = []
        try:
            for item in items:
                if item[0] == 0:
                    _, state, response, level = item
                    samples.append(balance_sample(state, response, level))
                    stamps.append(state.t_s + offset)
                else:
                    if samples:  # keep the two streams in the order things happened
                        self._push_samples(samples, stamps)
                        samples, stamps = [], []
                    event = item[1]
                    self._markers.push_sample([marker_text(event)], event.t_s + offset)
                    self.markers_pushed += 1
            if samples:
                self._push_samples(samples, stamps)
        except Exception as exc:  # never kill the session for a research stream
            if self.error is None:
                log.exception("LSL outlets failed; the session goes on without them")
            self.error = exc

    def _push_samples(self, samples: list[list[float]], stamps: list[float]) -> None:
        if len(samples) == 1:
            self._balance.push_sample(samples[0], stamps[0])
        else:
            self._balance.push_chunk(samples, stamps)
        self.samples_pushed += len(samples)

    # -- metadata ------------------------------------------------------------------
    def _describe(self, info: Any) -> Any:
        desc = info.desc()
        acquisition = desc.append_child("acquisition")
        acquisition.append_child_value("manufacturer", "vrbalance")
        acquisition.append_child_value("model", "balance loop")
        acquisition.append_child_value("software_version", __version__)
        desc.append_child_value(
            "reference_frame", "x to the patient's right, y anterior, z up; origin at the feet"
        )
        return desc

    def _balance_info(self, pylsl: Any) -> Any:
        info = pylsl.StreamInfo(
            f"{self.name}-balance",
            "Balance",
            len(BALANCE_CHANNELS),
            self.rate_hz,
            pylsl.cf_double64,
            f"{self.source_id}/balance",
        )
        desc = self._describe(info)
        channels = desc.append_child("channels")
        for label, unit, kind in BALANCE_CHANNELS:
            channel = channels.append_child("channel")
            channel.append_child_value("label", label)
            channel.append_child_value("unit", unit)
            channel.append_child_value("type", kind)
        codes = desc.append_child("verdict_codes")
        for label, code in VERDICT_CODES.items():
            codes.append_child_value(label, str(code))
        return info

    def _marker_info(self, pylsl: Any) -> Any:
        info = pylsl.StreamInfo(
            f"{self.name}-markers",
            "Markers",
            1,
            pylsl.IRREGULAR_RATE,
            pylsl.cf_string,
            f"{self.source_id}/markers",
        )
        desc = self._describe(info)
        channel = desc.append_child("channels").append_child("channel")
        channel.append_child_value("label", "Event")
        channel.append_child_value("type", "Marker")
        return info


class FanOut:
    """Several live sinks as one (the console's channel and the LSL outlets).

    Each call goes to every sink in order; each must return at once.
    """

    def __init__(self, *sinks: Any) -> None:
        self.sinks = tuple(s for s in sinks if s is not None)

    def tick(self, tick: Any) -> None:
        for sink in self.sinks:
            sink.tick(tick)

    def event(self, trial: int, event: Event) -> None:
        for sink in self.sinks:
            sink.event(trial, event)
