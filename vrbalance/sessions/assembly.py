"""How a session's parts share the machine: one place for ``run``, ``demo`` and ``replay``.

Which process reads the plate, which draws the world, and what the balance
loop shares its GIL with decide whether the safety monitor sees the plate's
frames on time (docs/integration.md, "Where the time went"). These choices
are made here, once, for every command:

* :func:`use_plate_process`: the plate (and the simulated plate, another
  device in a clinic) is read in the **plate process**
  (:class:`~vrbalance.devices.plate_process.PlateProcess`), its frames stamped
  there and handed over in shared memory, whenever the session runs on the
  monotonic clock (a test's manual clock keeps it in-process);
* :func:`open_simulated_plate`: the simulated person on a simulated plate
  through the real driver, with the same person's head, for the session
  runner's :class:`~vrbalance.sessions.runner.SimulatedDevices` and the demo;
* :func:`open_serial_plate`: a real plate (serial or input device);
* :func:`open_session_world`: the world in the **render process**
  (:class:`~vrbalance.sessions.render_process.RenderProcess`) for an offscreen
  or desktop session, in this process for the headset (the loop locates the
  head at its own rate) and for callers that drive the app themselves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from vrbalance.clock import Clock, MonotonicClock
from vrbalance.errors import ConfigError, VrBalanceError

log = logging.getLogger(__name__)


def use_plate_process(clock: Clock, wanted: bool | None = None) -> bool:
    """Whether to read the plate in its own process (by default: on the monotonic clock).

    The plate process stamps frames on ``CLOCK_MONOTONIC``; only a session on
    :class:`~vrbalance.clock.MonotonicClock` shares that timebase.

    Raises
    ------
    ConfigError
        ``wanted=True`` with another clock.
    """
    if wanted is None:
        return type(clock) is MonotonicClock
    if wanted and type(clock) is not MonotonicClock:
        raise ConfigError(
            f"plate_process=True needs the session on MonotonicClock, got {type(clock).__name__}"
        )
    return bool(wanted)


@dataclass
class SimulatedPlate:
    """An open simulated plate: what the loop reads, the person's head, and the device.

    Attributes
    ----------
    plate : object
        ``drain()``, ``drain_events()``, ``state`` (a ForcePlate or SharedPlate).
    head : SimulatedHead
        The same simulated person's head.
    plate_spec : PlateSpec
        The plate's geometry and protocol.
    """

    plate: Any
    head: Any
    plate_spec: Any
    _server: Any = None
    _process: Any = None
    _owns_process: bool = False

    def stall(self, duration_s: float) -> None:
        """The simulated device goes silent for ``duration_s`` (a scripted fault)."""
        self._fault("stall", duration_s)

    def unplug(self) -> None:
        """The simulated device's cable is pulled."""
        self._fault("unplug")

    def replug(self) -> None:
        """...and plugged back in."""
        self._fault("replug")

    def _fault(self, method: str, *args: float) -> None:
        if self._process is not None:
            self._process.simulated_fault(method, *args)
        elif self._server is not None:
            getattr(self._server, method)(*args)

    def stop(self) -> None:
        """Close driver and simulated device (and the plate process if this owns it)."""
        plate, self.plate = self.plate, None
        if plate is not None:
            plate.close()
        server, self._server = self._server, None
        if server is not None:
            server.stop()
        process, self._process = self._process, None
        if process is not None and self._owns_process:
            process.close()


def open_simulated_plate(
    plate: Any,
    person: Any,
    body: Any,
    ankle_m: tuple[float, float],
    clock: Clock,
    *,
    script: str = "",
    seed: int = 0,
    calibration: Any = None,
    process: Any = None,
    plate_process: bool | None = None,
) -> SimulatedPlate:
    """Open a simulated person on a simulated plate, read by the real driver.

    Parameters
    ----------
    plate : PlateSpec
        The plate to simulate.
    person : PersonParams
        The simulated person.
    body : Body
        Eye and ankle heights for the head.
    ankle_m : tuple of 2 float
        The stance's ankle axis on the floor (core frame), m.
    clock : Clock
        The session clock.
    script, seed
        The simulator's script and seed.
    calibration : Calibration, optional
        The driver's (default: the plate's own).
    process : PlateProcess, optional
        A running plate process to use (a session keeps one for all its
        trials); default: start one (owned by the result) when
        :func:`use_plate_process` says so.
    plate_process : bool, optional
        Force the choice (see :func:`use_plate_process`).

    Raises
    ------
    DeviceError, ProtocolError
        As the driver's ``open`` (no frame, unreadable bytes).
    """
    from vrbalance.sessions.sim import SimulatedHead

    if process is not None or use_plate_process(clock, plate_process):
        owns = process is None
        if owns:
            from vrbalance.devices.plate_process import PlateProcess

            process = PlateProcess().start()
        try:
            shared, person_view = process.open_simulated(
                plate, person, script=script, seed=seed, calibration=calibration
            )
        except BaseException:
            if owns:
                process.close()
            raise
        signal = _PersonSignal(person_view)
        return SimulatedPlate(
            shared,
            SimulatedHead(signal, body, clock, ankle_m),
            plate,
            _process=process,
            _owns_process=owns,
        )
    from vrbalance.devices.driver import ForcePlate
    from vrbalance.devices.pty_server import SimulatedPlateServer

    server = SimulatedPlateServer(plate, script=script, seed=seed, clock=clock, person=person)
    server.start()
    try:
        driver = ForcePlate(
            server.port_path, plate, calibration or server.calibration, clock=clock
        ).open()
    except VrBalanceError:
        server.stop()
        raise
    return SimulatedPlate(
        driver, SimulatedHead(server.signal, body, clock, ankle_m), plate, _server=server
    )


@dataclass(frozen=True)
class _PersonSignal:
    """What :class:`SimulatedHead` reads of a plate signal: its person."""

    person: Any


def open_serial_plate(
    plate: Any, port: str, clock: Clock, *, calibration: Any = None, process: Any = None
) -> Any:
    """Open a real plate (serial port or input device), in the plate process if given.

    Returns the plate (``drain``, ``drain_events``, ``state``, ``close``).
    """
    if process is not None:
        return process.open_serial(plate, port, calibration=calibration)
    from vrbalance.devices.evdev_plate import open_plate

    return open_plate(plate, port, calibration=calibration, clock=clock)


def xr_world_options(xr: bool) -> dict[str, Any]:
    """Extra world arguments for the headset (a seam: tests inject the fake runtime here)."""
    return {}


def open_session_world(
    *,
    offscreen: bool,
    xr: bool = False,
    clock: Any = None,
    own_process: bool = True,
    **options: Any,
) -> Any:
    """The world of a session: in the render process where it can be, else here.

    Offscreen and desktop sessions draw in the render process (away from the
    loop's GIL), at any ``size_px``. The headset (the loop locates its head at
    the loop's rate), the demo's desktop stand-in (its keys lean the head the
    loop reads) and the fake runtime's options keep the world in this process.
    """
    from vrbalance.sessions.world import open_world

    if xr:
        options = {**xr_world_options(True), **options}
    return open_world(offscreen=offscreen, xr=xr, clock=clock, own_process=own_process, **options)


def open_lsl(*, lsl: bool, network: bool, clock: Clock, rate_hz: float) -> Any:
    """The LSL outlets (``--lsl``, ``--lsl-network``), not started yet; ``None`` without."""
    if not (lsl or network):
        return None
    from vrbalance.sessions.lsl import LslOutlets

    return LslOutlets(clock=clock, rate_hz=rate_hz, network=network)


def session_runner(
    *,
    lsl: Any = None,
    channel: Any = None,
    before_trial: Any = None,
    **options: Any,
) -> Any:
    """The :class:`~vrbalance.sessions.runner.SessionRunner` with its live sinks wired.

    The console's channel, when there is one, takes the trial gate (each
    trial waits for the console's start) and the live ticks; the LSL outlets
    are a live sink beside it. ``options`` are the runner's own keywords.
    """
    from vrbalance.sessions.runner import SessionRunner

    wiring: dict[str, Any] = (
        channel.runner_options(before_trial or (lambda _index, _trial: None))
        if channel is not None
        else ({"before_trial": before_trial} if before_trial is not None else {})
    )
    if lsl is not None:
        from vrbalance.sessions.lsl import FanOut

        wiring["live"] = FanOut(wiring.get("live"), lsl)
    return SessionRunner(**options, **wiring)


#: What ``run`` says when it is given no input at all.
NO_DEVICES_MESSAGE = (
    "vrbalance run: give --port PORT for a real plate, --simulate for the simulated patient, "
    "or --xr for a headset-only session (no plate: head-only trials such as the tandem walk)"
)


def session_devices(
    *,
    protocol: Any,
    patient: Any,
    clock: Clock,
    plate_id: str,
    simulate: bool = False,
    port: str | None = None,
    headset: bool = False,
    seed: int = 0,
    sim_script: str = "",
) -> Any:
    """The session's devices, chosen once for ``run`` (and the console, which starts ``run``).

    * ``simulate``: the simulated patient (its plate in the plate process);
    * ``port``: a real plate (serial or input device), which needs the
      patient's recorded mass for the load check before every trial;
    * neither, with the headset: no plate at all. The head pose comes from
      the headset; every trial must be a head-only one (``plate = false``),
      because a trial planned on the plate would run without the monitor's
      plate triggers (the margin of stability, a step off, a change of
      contact) and without its measures.

    Everything is checked before anything opens: a refusal names the
    protocol and the trial.

    Raises
    ------
    ConfigError
        No input, a plate trial without a plate, a plate without a mass.
    """
    from vrbalance.sessions.runner import (
        HeadsetDevices,
        SerialDevices,
        SimulatedDevices,
        missing_mass_message,
        patient_body,
    )

    if simulate:
        body = patient_body(patient)
        return SimulatedDevices(plate_id, body, clock, seed=seed, extra_script=sim_script)
    if port:
        if patient.mass_kg is None:  # the plate's load check needs it (plate_check.py)
            raise ConfigError(missing_mass_message(patient.id))
        return SerialDevices(plate_id, port, clock)
    if not headset:
        raise ConfigError(NO_DEVICES_MESSAGE)
    check_headset_only(protocol)
    return HeadsetDevices()


def check_headset_only(protocol: Any) -> None:
    """Refuse a protocol with any trial on the plate for a session without one.

    The one check behind ``run --xr`` without a plate and the console's
    devices "none" (which shows its message before anything starts).
    ``protocol`` is the one the session would run: without the baseline,
    which a headset-only session leaves out.

    Raises
    ------
    ConfigError
        Naming the protocol and its first trial on the plate.
    """
    for i, trial in enumerate(protocol.trials):
        if trial.plate:
            raise ConfigError(
                f"protocol {protocol.name!r} trial {i + 1} ({trial.name}) stands on the force "
                "plate, and this session has none (headset only): choose a head-only protocol "
                "such as tandem_walk, or give --port PORT (or --simulate)"
            )
