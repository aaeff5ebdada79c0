"""``--lsl`` stays on this machine: the outlets' real sockets, read back from the kernel.

liblsl binds its TCP data server and UDP time service to the wildcard address
whatever its configuration says, so the check is on what the kernel holds:
this process's sockets from ``/proc/self/net/{tcp,udp}[6]`` (matched to the
process through ``/proc/self/fd``), each on the outlets' ports either bound to
a loopback address or to the loopback device (``SO_BINDTODEVICE``, which
``/proc/net`` does not show and ``getsockopt`` does).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest

from vrbalance.clock import ManualClock
from vrbalance.events import Event
from vrbalance.sessions.lsl import LslOutlets
from vrbalance.sessions.lsl_scope import (
    LOOPBACK_DEVICE,
    MACHINE_CONFIG,
    NETWORK_WARNING,
    bound_device,
    confine_new_sockets,
    machine_config,
    socket_fds,
)

pylsl = pytest.importorskip("pylsl")

_TCP_LISTEN = "0A"


def _hex_address(text: str) -> tuple[str, int]:
    """``/proc/net`` ``ADDR:PORT`` (little-endian 32-bit words) as (ip, port)."""
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, words), int(port, 16)


def _process_sockets() -> list[dict[str, Any]]:
    """This process's IP sockets: protocol, local address, port, state and a file descriptor."""
    fd_of: dict[int, int] = {}
    for fd in socket_fds():
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        fd_of[int(target[len("socket:[") : -1])] = fd
    found = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        path = Path(f"/proc/self/net/{proto}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            inode = int(fields[9])
            if inode in fd_of:
                ip, port = _hex_address(fields[1])
                found.append(
                    {"proto": proto, "ip": ip, "port": port, "state": fields[3], "fd": fd_of[inode]}
                )
    return found


def _device(fd: int) -> bytes:
    with socket.socket(fileno=os.dup(fd)) as sock:
        return bound_device(sock)


def _outlet_ports(outlets: LslOutlets) -> set[int]:
    ports = set()
    for outlet in (outlets._balance, outlets._markers):
        xml = outlet.get_info().as_xml()
        for tag in ("v4data_port", "v4service_port", "v6data_port", "v6service_port"):
            ports |= {int(p) for p in re.findall(rf"<{tag}>(\d+)</{tag}>", xml)}
    return ports - {0}


def _outlet_sockets(outlets: LslOutlets) -> list[dict[str, Any]]:
    ports = _outlet_ports(outlets) | {16571}  # data, time service, discovery responders
    return [s for s in _process_sockets() if s["port"] in ports]


def test_outlet_sockets_accept_only_this_machine() -> None:
    source = f"vrbalance-test-{uuid.uuid4().hex}"
    with LslOutlets(clock=ManualClock(0.0), rate_hz=250.0, source_id=source) as outlets:
        sockets = _outlet_sockets(outlets)
        listening = [s for s in sockets if s["proto"].startswith("tcp")]
        assert any(s["state"] == _TCP_LISTEN for s in listening), sockets  # the data server
        assert any(s["proto"].startswith("udp") for s in sockets), sockets  # time service
        for s in sockets:
            loopback = s["ip"] in ("127.0.0.1", "::1")
            assert loopback or _device(s["fd"]) == LOOPBACK_DEVICE, s
        # and LSL still works over loopback: an inlet finds the stream and reads a marker
        (info,) = pylsl.resolve_byprop("source_id", f"{source}/markers", 1, 10.0)
        inlet = pylsl.StreamInlet(info, recover=False)
        inlet.open_stream(10.0)
        outlets.event(0, Event(0.5, "op", "k", "m"))
        sample, _ = inlet.pull_sample(timeout=10.0)
        assert sample == ["op/k: m"]


def test_network_mode_warns_and_leaves_the_sockets_on_the_network(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = f"vrbalance-test-{uuid.uuid4().hex}"
    with caplog.at_level(logging.WARNING, logger="vrbalance.sessions.lsl"):
        outlets = LslOutlets(clock=ManualClock(0.0), rate_hz=250.0, source_id=source, network=True)
        with outlets:
            ports = _outlet_ports(outlets)
            data = [
                s
                for s in _process_sockets()
                if s["port"] in ports and s["state"] == _TCP_LISTEN and s["proto"] == "tcp"
            ]
            assert data and all(s["ip"] == "0.0.0.0" and _device(s["fd"]) == b"" for s in data)
    assert [r.getMessage() for r in caplog.records] == [NETWORK_WARNING]
    assert "without authentication" in NETWORK_WARNING


def test_machine_config_is_private_and_restores_the_users_lslapicfg(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("LSLAPICFG", "/home/someone/lsl_api.cfg")
    with machine_config() as path:
        assert os.environ["LSLAPICFG"] == str(path)
        assert path.parent.parent == tmp_path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        text = path.read_text()
        assert "ResolveScope = machine" in text and "ListenAddress = 127.0.0.1" in text
        assert text == MACHINE_CONFIG
    assert os.environ["LSLAPICFG"] == "/home/someone/lsl_api.cfg"
    assert not path.parent.exists()


def test_confine_binds_new_wildcard_sockets_to_lo_and_leaves_the_rest() -> None:
    with socket.socket() as old:
        old.bind(("0.0.0.0", 0))
        before = socket_fds()
        with (
            socket.socket() as wild,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as wild_udp,
            socket.socket() as local,
            socket.socket(socket.AF_UNIX) as unix,
        ):
            wild.bind(("0.0.0.0", 0))
            wild.listen()
            wild_udp.bind(("0.0.0.0", 0))
            local.bind(("127.0.0.1", 0))
            assert unix.family == socket.AF_UNIX
            assert confine_new_sockets(before) == 2
            assert bound_device(wild) == LOOPBACK_DEVICE
            assert bound_device(wild_udp) == LOOPBACK_DEVICE
            assert bound_device(local) == b""  # already on loopback
            # a connection over loopback still reaches the confined listener
            with socket.create_connection(("127.0.0.1", wild.getsockname()[1]), 5.0):
                conn, _ = wild.accept()
                conn.close()
        assert bound_device(old) == b""  # opened before: not ours to touch
