"""The safety path end to end: simulated plate -> pty -> driver -> balance loop -> monitor.

Everything here is the product's own parts, wired the way the session runner
wires them (``vrbalance/sessions/runner.py``): a :class:`SimulatedPlateServer`
streams real bytes on a pseudo-terminal, the real :class:`ForcePlate` reads
them in its reader thread, a :class:`BalanceLoop` drains the plate, runs the
:class:`BalanceEstimator` and hands every state to the :class:`SafetyMonitor`
(wrapped in a :class:`MonitorProbe`) in the same tick, then publishes the
:class:`TickResult`.

Two clocks drive it:

* :class:`~vrbalance.clock.MonotonicClock`: the real thing, as ``vrbalance run``
  runs it: the simulated plate and its driver in the plate process
  (:class:`~vrbalance.devices.plate_process.PlateProcess`: their own process
  and GIL, real-time priority where the system allows it, frames handed over
  in shared memory), the balance loop in its own thread here, tuned as the
  session runner tunes it, each at its own pace (the loop at 250 Hz, the plate
  at 100 Hz);
* :class:`LockstepClock`: a manual clock for exact, repeatable runs. The
  balance loop's thread owns the time; when it sleeps, time jumps to the end
  of the sleep and the call returns only once the plate server has written
  every frame due by then and the driver has pushed every written frame into
  its ring buffer (or reported the plate lost). Which frames each tick drains,
  and so every state and verdict, is then a function of the seed alone.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from vrbalance.balance.estimator import BalanceEstimator
from vrbalance.balance.geometry import Body
from vrbalance.balance.stance import Stance, make_stance
from vrbalance.balance.state import BalanceState
from vrbalance.clock import Clock, MonotonicClock
from vrbalance.config.plates import load_foot_template, load_plate
from vrbalance.devices.driver import ForcePlate, PlateState
from vrbalance.devices.head import HeadPoseSource
from vrbalance.devices.plate_process import PlateProcess, SharedPlate
from vrbalance.devices.pty_server import SimulatedPlateServer
from vrbalance.devices.simulator import PersonParams
from vrbalance.director.envelope import SafetyEnvelope
from vrbalance.director.monitor import (
    LOAD_REFERENCE_TAU_S,
    MonitorStatus,
    PlateStatus,
    SafetyMonitor,
    Verdict,
)
from vrbalance.director.monitor import (
    plate_status as plate_status_of,
)
from vrbalance.director.probe import MonitorProbe
from vrbalance.events import Event
from vrbalance.realtime.loop import close_after_with
from vrbalance.realtime.pipeline import RECOMMENDED_TUNING, BalanceLoop, TickResult
from vrbalance.sessions.sim import SIM_COP_AHEAD_OF_ANKLE_M, SimulatedHead

#: Balance-loop rate of every test here, Hz (the product's default).
LOOP_RATE_HZ = 250.0
#: Longest real time a lockstep advance may wait for the server and driver, s.
SYNC_TIMEOUT_S = 5.0
#: Where the lockstep time starts within a plate period (off every frame boundary).
LOCKSTEP_PHASE = 0.37
#: Manual plate periods run before the loop starts (the driver is streaming by then).
LOCKSTEP_WARMUP_FRAMES = 3
#: Float slack when comparing manual times, s (far below a 1 µs sleep).
_EPS_S = 1e-9


#: Driver state -> monitor status, as the session runner maps it each tick.
class LockstepClock:
    """A manual clock one thread moves; every other thread's sleep waits for it.

    Parameters
    ----------
    settled : callable () -> bool, optional
        Extra condition an advance waits for after every follower is asleep
        again (e.g. "the driver has pushed every frame written").
    timeout_s : float
        Real time an advance may wait before it fails, s.

    Notes
    -----
    The *owner* is the thread that created the clock (the test thread, which
    runs the balance loop with ``loop.run`` or ``loop.tick``). Its
    ``sleep_s(d)`` is :meth:`advance_to` ``(now + d)``. Any other thread
    (*follower*: the plate server's writer) blocks in ``sleep_s(d)`` until the
    owner has moved the time to ``now + d``. :meth:`advance_to` returns once
    every follower is blocked again with a wake-up time still in the future,
    so it has done all the work due by the new time, and ``settled()`` holds.
    """

    def __init__(
        self, settled: Callable[[], bool] | None = None, *, timeout_s: float = SYNC_TIMEOUT_S
    ) -> None:
        self._t_s = 0.0
        self._owner = threading.get_ident()
        self._cond = threading.Condition()
        self._sleepers: dict[int, float] = {}  # follower thread id -> wake-up time
        self._followers: set[int] = set()
        self._released = False
        self.settled = settled
        self.timeout_s = timeout_s
        self.advances = 0

    def now_s(self) -> float:
        return self._t_s

    def sleep_s(self, duration_s: float) -> None:
        if duration_s <= 0.0:
            return
        if threading.get_ident() == self._owner:
            self.advance_to(self._t_s + duration_s)
            return
        me = threading.get_ident()
        with self._cond:
            target = self._t_s + duration_s
            self._followers.add(me)
            self._sleepers[me] = target
            self._cond.notify_all()
            while not self._released and self._t_s < target - _EPS_S:
                self._cond.wait()
            del self._sleepers[me]
            self._cond.notify_all()

    def _followers_idle(self) -> bool:
        now = self._t_s
        return all(
            tid in self._sleepers and self._sleepers[tid] - _EPS_S > now for tid in self._followers
        )

    def advance_to(self, t_s: float) -> None:
        """Move the time to ``t_s`` (owner only) and wait until everything due has happened.

        Raises
        ------
        RuntimeError
            If a follower or ``settled`` did not catch up within ``timeout_s``.
        """
        if threading.get_ident() != self._owner:
            raise RuntimeError("only the thread that created the LockstepClock may move it")
        deadline = time.monotonic() + self.timeout_s
        with self._cond:
            if t_s > self._t_s:
                self._t_s = t_s
            self._cond.notify_all()
            while not self._released and not self._followers_idle():
                if not self._cond.wait(max(deadline - time.monotonic(), 0.0)):
                    raise RuntimeError(f"followers did not catch up with t={t_s:.4f} s")
        # The driver's reader thread does not sleep on this clock: poll its condition.
        while self.settled is not None and not self._released and not self.settled():
            if time.monotonic() > deadline:
                raise RuntimeError(f"pipeline not settled at t={t_s:.4f} s")
            time.sleep(20e-6)
        self.advances += 1

    def wait_for_followers(self, n: int = 1) -> None:
        """Block until ``n`` follower threads sleep on this clock (owner only).

        A follower reads the clock's time when it starts (the plate server
        takes it as its frames' origin); moving the time before it has would
        shift its frame grid by however far the owner got first, a race that
        decides which advance writes which frame.

        Raises
        ------
        RuntimeError
            If they are not asleep within ``timeout_s``.
        """
        deadline = time.monotonic() + self.timeout_s
        with self._cond:
            while len(self._sleepers) < n:
                if not self._cond.wait(max(deadline - time.monotonic(), 0.0)):
                    raise RuntimeError(f"{n} follower(s) never slept on the lockstep clock")

    def release(self) -> None:
        """Let every follower's sleep return at once (for shutting down)."""
        with self._cond:
            self._released = True
            self._cond.notify_all()


class DeviceStatusMonitor:
    """The monitor step of the product's session runner: device status read at the tick.

    Each tick it maps the plate driver's state to :class:`MonitorStatus`
    (``lost`` -> ``PlateStatus.LOST`` ...), collects the driver's device events
    with the tick they were seen in, and calls the probe (which calls the
    :class:`SafetyMonitor`) with the state of this very tick.
    """

    def __init__(
        self,
        monitor: SafetyMonitor,
        plate: ForcePlate | SharedPlate | None,
        *,
        head_expected: bool,
    ) -> None:
        self.monitor = monitor
        self.probe = MonitorProbe(monitor)
        self.plate = plate
        self.head_expected = head_expected
        #: ``(tick, event)`` for every device event, in order.
        self.device_events: list[tuple[int, Event]] = []
        #: Plate status used at each tick, by tick.
        self.statuses: list[PlateStatus] = []

    def step(self, state: BalanceState) -> Verdict:
        plate_status = PlateStatus.NONE
        if self.plate is not None:
            # Events first, then the state: the driver sets its state before it
            # queues the event, so an event seen here is never ahead of the status.
            self.device_events.extend((state.tick, e) for e in self.plate.drain_events())
            plate_status = plate_status_of(self.plate.state.value)
        self.monitor.set_status(MonitorStatus(plate=plate_status, head_expected=self.head_expected))
        self.statuses.append(plate_status)
        return self.probe.step(state)

    __call__ = step


@dataclass
class Published:
    """What a sink on the loop thread saw: each result and the wall time it was published."""

    results: list[TickResult] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)

    def __call__(self, result: TickResult) -> None:
        # Sinks run right after LatestValue.publish on the loop thread.
        self.wall_s.append(time.perf_counter())
        self.results.append(result)


def standing_person(stance: Stance) -> PersonParams:
    """The simulated person standing on ``stance`` (mean CoP ahead of the ankles, as the demo)."""
    ankle = stance.ankle_m
    return PersonParams(
        mass_kg=70.0, height_m=1.70, stance_cop_m=(ankle[0], ankle[1] + SIM_COP_AHEAD_OF_ANKLE_M)
    )


class Rig:
    """Simulated plate -> pty -> ForcePlate -> BalanceLoop (estimator, monitor) -> sink.

    Parameters
    ----------
    script : str
        The simulator's script (``"fall@2s"``, ``"stepoff@2s"``, ``"unplug@2s"``).
    lockstep : bool
        Use a :class:`LockstepClock` (exact, everything in this process) instead
        of the monotonic clock with the plate in the plate process.
    plate_id : str
        Shipped plate id.
    head : HeadPoseSource or "person", optional
        Head source of the loop; ``"person"``: the simulated person's own head
        (:class:`~vrbalance.sessions.sim.SimulatedHead`, as ``vrbalance demo``
        and ``vrbalance run --simulate`` use). Without one the session is
        plate-only (``head_expected=False``) and the CoM is the low-passed CoP.
    envelope : SafetyEnvelope, optional
    seed : int
    on_write : callable, optional
        Passed to the server (``(first_seq, n, t_s)`` after each write); lockstep only.
    stall_after_s : float
        The driver's "no frame for this long: stalled" (its default 0.1 s);
        lockstep only (the plate process runs the driver as the product does).
    """

    def __init__(
        self,
        script: str,
        *,
        lockstep: bool = True,
        plate_id: str = "wii-balance-board",
        head: HeadPoseSource | str | None = None,
        envelope: SafetyEnvelope | None = None,
        seed: int = 1,
        on_write: Callable[[int, int, float], None] | None = None,
        stall_after_s: float | None = None,
    ) -> None:
        if not lockstep and (on_write is not None or stall_after_s is not None):
            raise ValueError("on_write and stall_after_s: lockstep rigs only")
        if isinstance(head, str) and head != "person":
            raise ValueError(f"head: expected a HeadPoseSource, 'person' or None, got {head!r}")
        self.stall_after_s = 0.1 if stall_after_s is None else stall_after_s
        self.body = Body(height_m=1.70, mass_kg=70.0)
        self.stance = make_stance("feet_apart", self.body, load_foot_template())
        self.envelope = envelope if envelope is not None else SafetyEnvelope()
        self.lockstep: LockstepClock | None = LockstepClock() if lockstep else None
        self.clock: Clock = self.lockstep if self.lockstep is not None else MonotonicClock()
        self.plate_spec = load_plate(plate_id)
        self.person = standing_person(self.stance)
        self._script = script
        self._seed = seed
        self._written_seq = -1
        self._pushed_seq = -1
        self._user_on_write = on_write
        #: The in-process simulated plate (lockstep), or None (real time: the plate process's).
        self.server: SimulatedPlateServer | None = None
        #: The plate process (real time), or None.
        self.process: PlateProcess | None = None
        if self.lockstep is not None:
            self.server = SimulatedPlateServer(
                self.plate_spec,
                script=script,
                seed=seed,
                clock=self.clock,
                person=self.person,
                on_write=self._on_write,
            )
        self.plate: ForcePlate | SharedPlate | None = None
        self._head_arg = head
        self.head: HeadPoseSource | None = None
        self.published = Published()
        self.guard: DeviceStatusMonitor | None = None
        self.loop: BalanceLoop | None = None

    # -- lockstep bookkeeping (server thread / reader thread) ------------------------
    def _on_write(self, first_seq: int, n: int, t_s: float) -> None:
        self._written_seq = first_seq + n - 1
        if self._user_on_write is not None:
            self._user_on_write(first_seq, n, t_s)

    def _on_frames(self, frames: Any, t_s: float) -> None:
        self._pushed_seq = frames[-1].seq

    def _settled(self) -> bool:
        if self.server is None:
            raise RuntimeError("the lockstep clock needs the in-process plate server")
        if not self.server.plugged:
            return self.plate is None or self.plate.state in (PlateState.LOST, PlateState.CLOSED)
        return self._pushed_seq >= self._written_seq

    def _start_lockstep(self, clock: LockstepClock) -> None:
        """Run the plate for a few manual periods until the driver streams; drop those frames.

        Which of the first frames reach the ring buffer is a race (the port's
        input flush on open, the ASCII parser dropping a first line that may
        be partial), so the warm-up frames are drained and discarded: the
        loop's first tick then gets exactly the one frame written after them, and
        every run with the same seed sees the same frames at the same ticks.
        """
        if self.server is None:
            raise RuntimeError("the lockstep clock needs the in-process plate server")
        period_s = 1.0 / self.server.rate_hz
        # The server's frames count from the time its thread first reads (t = 0):
        # wait until it has, and sleeps, before the time moves.
        clock.wait_for_followers(1)
        # Keep every later time off the server's frame boundaries (k * period):
        # the server floors elapsed / period, and a time a rounding error short
        # of a boundary would leave a frame both due (by its sleep) and not yet
        # due (by the floor) for ever, as the manual time does not move on its own.
        clock.advance_to(LOCKSTEP_PHASE * period_s)
        for _ in range(LOCKSTEP_WARMUP_FRAMES):
            clock.advance_to(clock.now_s() + period_s)
        deadline = time.monotonic() + SYNC_TIMEOUT_S
        while not (0 <= self._written_seq <= self._pushed_seq):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no frame from {self.server.port_path} on the lockstep clock")
            time.sleep(1e-4)
        clock.settled = self._settled
        if self.plate is not None:
            self.plate.drain()
        # One more frame, so the loop's first tick has one, as after a real open().
        clock.advance_to(clock.now_s() + period_s)

    # -- life cycle ------------------------------------------------------------------
    def __enter__(self) -> Self:
        person: Any = None
        if self.server is not None and self.lockstep is not None:
            self.server.start()
            self.plate = ForcePlate(
                self.server.port_path,
                self.server.plate,
                self.server.calibration,
                clock=self.clock,
                on_frames=self._on_frames,
                # On the lockstep clock no second frame comes while open() waits.
                wait_for_first_frame=False,
                stall_after_s=self.stall_after_s,
            ).open()
            self._start_lockstep(self.lockstep)
            person = self.server.signal.person
        else:
            # As `vrbalance run` does: the plate (here simulated) is read in its own
            # process, so this process's GIL (loop, test, collector) cannot make its
            # frames late; the driver there stamps them on CLOCK_MONOTONIC.
            self.process = PlateProcess().start()
            self.plate, person = self.process.open_simulated(
                self.plate_spec.id, self.person, script=self._script, seed=self._seed
            )
        head = self._head_arg
        if head == "person":
            signal = type("_Signal", (), {"person": person})()
            head = SimulatedHead(signal, self.body, self.clock, self.stance.ankle_m)
        self.head = head  # type: ignore[assignment]
        estimator = BalanceEstimator(self.stance, self.body, self.plate_spec.geometry)
        self.guard = DeviceStatusMonitor(
            SafetyMonitor(self.envelope), self.plate, head_expected=self.head is not None
        )
        self.loop = BalanceLoop(
            estimator,
            clock=self.clock,
            rate_hz=LOOP_RATE_HZ,
            plate=self.plate,
            head=self.head,
            monitor=self.guard,
            sinks=[self.published],
            # In real time the loop thread is tuned as the session runner tunes it
            # (SCHED_FIFO where allowed, short GIL switch interval): untuned, on a busy
            # machine it skips deadlines by the dozen and judges on fewer ticks.
            **(RECOMMENDED_TUNING if self.lockstep is None else {}),  # type: ignore[arg-type]
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.loop is not None:
            close_after_with(self.loop.stop, exc, "rig's balance loop")
        if self.plate is not None:
            self.plate.close()
        if self.lockstep is not None:
            self.lockstep.release()
        if self.server is not None:
            self.server.stop()
        if self.process is not None:
            self.process.close()

    # -- what happened --------------------------------------------------------------
    @property
    def probe(self) -> MonitorProbe:
        if self.guard is None:
            raise RuntimeError("the rig is not open")
        return self.guard.probe

    def quiet_results(self, onset_s: float) -> list[TickResult]:
        """Published ticks before any frame made at or after ``onset_s`` (device time) arrived.

        On the lockstep clock the loop's time is the simulation's, so the
        ticks at or after ``onset_s`` are cut as well (an unplug sends no frame).
        """
        out = []
        for result in self.published.results:
            if self.lockstep is not None and result.t_s >= onset_s - _EPS_S:
                break
            if any(
                f.device_time_s is not None and f.device_time_s >= onset_s - _EPS_S
                for f in result.plate_frames
            ):
                break
            out.append(result)
        return out


def first_plate_trigger_tick(
    states: list[BalanceState], envelope: SafetyEnvelope
) -> tuple[int | None, str | None]:
    """An oracle, written apart from the monitor from docs/safety.md: the first tick
    a plate trigger must calm or stop, and which trigger the monitor must name.

    Conditions: the margin (XCoM, else CoP) below ``edge_margin_m`` for
    ``margin_dwell_s`` since the first tick below (calm); the load below
    ``load_collapse_fraction`` of the running standing load (first loaded
    force, then a first-order low-pass with a 2 s time constant, frozen while
    collapsed); the CoP more than ``cop_off_bos_m`` outside the base of
    support; the CoP moving more than ``cop_jump_m`` between ticks; the plate
    unloaded after being loaded (all stop the trial). When several hold in
    one tick, the strongest response names the cause, then the monitor's
    order (as listed).

    Returns
    -------
    tick, name : int or None, str or None
    """
    th = envelope.monitor
    loaded = False
    prev_cop: tuple[float, float] | None = None
    prev_t: float | None = None
    load_ref: float | None = None
    below_since: float | None = None
    for s in states:
        dt_s = 0.0 if prev_t is None else s.t_s - prev_t
        prev_t = s.t_s
        hits: list[str] = []
        margin = s.margin_xcom_m if s.margin_xcom_m is not None else s.margin_cop_m
        if margin is not None and margin < th.edge_margin_m:
            below_since = s.t_s if below_since is None else below_since
        else:
            below_since = None
        calm = below_since is not None and s.t_s - below_since + _EPS_S >= th.margin_dwell_s
        if s.plate_loaded:
            loaded = True
            force = s.vertical_force_n
            if force is not None:
                if load_ref is None:
                    load_ref = force
                elif force < th.load_collapse_fraction * load_ref:
                    hits.append("load_collapse")
                elif dt_s > 0.0:
                    load_ref += dt_s / (LOAD_REFERENCE_TAU_S + dt_s) * (force - load_ref)
            if s.margin_cop_m is not None and s.margin_cop_m < -th.cop_off_bos_m:
                hits.append("cop_off_bos")
            if (
                s.cop_m is not None
                and prev_cop is not None
                and math.dist(s.cop_m, prev_cop) > th.cop_jump_m
            ):
                hits.append("cop_jump")
            prev_cop = s.cop_m
        else:
            if loaded:
                hits.append("contact_lost")
            prev_cop = None
        if hits:
            return s.tick, hits[0]
        if calm:
            return s.tick, "margin_at_edge"
    return None, None


def crossing_predicate(
    name: str, envelope: SafetyEnvelope
) -> Callable[[BalanceState], bool] | None:
    """``crossed(state)`` for :meth:`MonitorProbe.latency`, for the oracle's trigger ``name``.

    The margin's crossing is the first state below ``edge_margin_m`` (the
    dwell then runs); the others' is the triggering state itself. ``None``
    for the triggers that need earlier states (load collapse, CoP jump): for
    those the oracle's tick is the crossing.
    """
    th = envelope.monitor
    if name == "margin_at_edge":

        def below_edge(s: BalanceState) -> bool:
            m = s.margin_xcom_m if s.margin_xcom_m is not None else s.margin_cop_m
            return m is not None and m < th.edge_margin_m

        return below_edge
    if name == "cop_off_bos":
        return lambda s: s.margin_cop_m is not None and s.margin_cop_m < -th.cop_off_bos_m
    if name == "contact_lost":
        return lambda s: not s.plate_loaded
    return None
