"""Keep the LSL outlets on this machine: liblsl's configuration and the sockets it opens.

LSL has no authentication and no TLS, and liblsl listens on every network
interface by default: any computer on the network could find and read the
streams. The project's rule is no listener beyond loopback unless the user
asks for it, so ``--lsl`` confines liblsl to this machine in two steps, and
only ``--lsl-network`` (the user's own ``LSLAPICFG`` or liblsl's defaults)
publishes on the network.

1. **Configuration.** liblsl reads its configuration once, at its first use
   in the process, from ``$LSLAPICFG`` before its other locations
   (``api_config.cpp``). :func:`machine_config` writes :data:`MACHINE_CONFIG`
   to a 0600 file in a private 0700 folder and points ``LSLAPICFG`` at it
   while the outlets are created: ``ResolveScope = machine`` (discovery
   queries and answers only on 127.0.0.1, multicast TTL 0), the multicast
   responders bound to ``ListenAddress = 127.0.0.1``, IPv6 off, no
   ``KnownPeers``.
2. **Sockets.** No liblsl setting chooses the address of an outlet's TCP data
   server or its UDP time service: ``tcp_server.cpp`` and ``udp_server.cpp``
   bind the wildcard address (0.0.0.0) on a port of ``BasePort`` +
   ``PortRange``. :func:`confine_new_sockets` therefore binds every socket
   the outlets opened that is not already on a loopback address to the
   loopback *device* (``SO_BINDTODEVICE lo``; unprivileged since Linux 5.7
   for a socket not yet bound to a device), after which the kernel delivers
   to it only what arrives on ``lo``, i.e. what comes from this machine
   (``ss -ltnup`` shows ``0.0.0.0%lo:16572``). A connection from elsewhere
   accepted in the microseconds before (the streams are not announced
   beyond loopback, and no sample has been pushed yet) is shut down. If a
   socket cannot be confined, the outlets are not used (fail closed).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vrbalance.errors import DeviceError

MACHINE_CONFIG = """\
; written by vrbalance for --lsl: LSL stays on this machine (docs/lsl.md)
[ports]
IPv6 = disable
[multicast]
ResolveScope = machine
MachineAddresses = {127.0.0.1}
ListenAddress = 127.0.0.1
[lab]
KnownPeers = {}
[log]
level = -2
"""
"""liblsl's ``lsl_api.cfg`` for ``--lsl``: discovery and answers on loopback only."""
LOOPBACK_DEVICE = b"lo"
NETWORK_WARNING = (
    "--lsl-network: the LSL streams are published to the lab network without "
    "authentication (anyone on it can read them)"
)
"""The one-line warning ``--lsl-network`` logs."""


def add_lsl_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--lsl`` and ``--lsl-network`` to a command's parser.

    ``vrbalance run`` and ``vrbalance demo`` publish the same streams with the
    same scope rules, so both take the flags from here and their help cannot
    drift apart.
    """
    parser.add_argument(
        "--lsl",
        action="store_true",
        help="publish the balance state and events as Lab Streaming Layer streams on this "
        "machine only (docs/lsl.md)",
    )
    parser.add_argument(
        "--lsl-network",
        action="store_true",
        help="with --lsl, publish the LSL streams to the lab network instead (liblsl's own "
        "configuration, LSLAPICFG): unauthenticated, anyone on the network can read them",
    )


@contextmanager
def machine_config() -> Iterator[Path]:
    """Point ``LSLAPICFG`` at :data:`MACHINE_CONFIG` for the duration of the block.

    The file is 0600 in a fresh 0700 folder (``$XDG_RUNTIME_DIR`` when set,
    else the temporary folder), so no other user can swap the configuration
    between its writing and liblsl's reading. On exit ``LSLAPICFG`` is
    restored and the folder removed: liblsl has read its configuration by
    then (an outlet's constructor loads it), and the processes the session
    starts later inherit nothing that points at a deleted file.

    Yields
    ------
    Path
        The configuration file.
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    parent = runtime if runtime and os.path.isdir(runtime) else None
    folder = Path(tempfile.mkdtemp(prefix="vrbalance-lsl-", dir=parent))  # 0700
    previous = os.environ.get("LSLAPICFG")
    try:
        path = folder / "lsl_api.cfg"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(MACHINE_CONFIG)
        os.environ["LSLAPICFG"] = str(path)
        yield path
    finally:
        if previous is None:
            os.environ.pop("LSLAPICFG", None)
        else:
            os.environ["LSLAPICFG"] = previous
        shutil.rmtree(folder, ignore_errors=True)


def socket_fds() -> set[int]:
    """The file descriptors of this process that are sockets (``/proc/self/fd``)."""
    fds: set[int] = set()
    try:
        names = os.listdir("/proc/self/fd")
    except OSError as exc:
        raise DeviceError(
            f"--lsl: cannot list /proc/self/fd for LSL's sockets ({exc}); use --lsl-network "
            "to publish the streams on the network, unauthenticated"
        ) from exc
    for name in names:
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                fds.add(int(name))
        except OSError:  # closed meanwhile (or the listing's own descriptor)
            continue
    return fds


def _is_loopback(address: object) -> bool:
    if not isinstance(address, tuple) or not address:
        return False
    try:
        return ipaddress.ip_address(str(address[0]).split("%")[0]).is_loopback
    except ValueError:
        return False


def bound_device(sock: socket.socket) -> bytes:
    """The device ``sock`` is bound to (``SO_BINDTODEVICE``), ``b""`` for none."""
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, 16).rstrip(b"\0")


def on_this_machine(sock: socket.socket) -> bool:
    """Whether ``sock`` can only talk to this machine: bound to loopback, by address or device."""
    return _is_loopback(sock.getsockname()) or bound_device(sock) == LOOPBACK_DEVICE


def confine_new_sockets(before: set[int]) -> int:
    """Bind to ``lo`` every IP socket opened since ``before`` that is not on loopback.

    Parameters
    ----------
    before : set of int
        :func:`socket_fds` taken just before the outlets were created.

    Returns
    -------
    int
        How many sockets were bound to the loopback device.

    Raises
    ------
    DeviceError
        A socket could not be confined (no ``SO_BINDTODEVICE`` on this
        platform, or a kernel older than 5.7 without ``CAP_NET_RAW``).
    """
    confined = 0
    for fd in sorted(socket_fds() - before):
        try:
            sock = socket.socket(fileno=os.dup(fd))  # a second handle on liblsl's socket
        except OSError:  # closed meanwhile
            continue
        with sock:
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            if _is_loopback(sock.getsockname()):
                continue
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, LOOPBACK_DEVICE)
            except (AttributeError, OSError) as exc:
                raise DeviceError(
                    f"--lsl: cannot keep LSL's socket {sock.getsockname()} on this machine "
                    f"(SO_BINDTODEVICE lo: {exc}); use --lsl-network to publish the streams "
                    "on the network, unauthenticated"
                ) from exc
            confined += 1
            try:
                peer = sock.getpeername()
            except OSError:
                peer = None
            if peer is not None and not _is_loopback(peer):
                sock.shutdown(socket.SHUT_RDWR)  # accepted before the confinement
            if not on_this_machine(sock):
                name = sock.getsockname()
                raise DeviceError(f"--lsl: LSL's socket {name} is still on the network")
    return confined
