"""Devices: things that produce timestamped samples and nothing else.

Force plates over a serial port: :mod:`~vrbalance.devices.protocols` (pure
bytes-in, frames-out parsers for the ASCII-line and binary wire formats),
:mod:`~vrbalance.devices.calibration` (counts to newtons, fitting),
:mod:`~vrbalance.devices.driver` (:class:`ForcePlate`: reader thread, states,
reconnect), :mod:`~vrbalance.devices.simulator` (a standing person) and
:mod:`~vrbalance.devices.pty_server` (:class:`SimulatedPlateServer`, the
simulated plate on a pseudo-terminal). Head-pose sources live in
:mod:`~vrbalance.devices.head`. Nothing is imported here, so importing a
submodule never pulls in pyserial or Panda3D by accident.
"""
