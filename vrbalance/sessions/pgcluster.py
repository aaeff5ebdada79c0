"""A throwaway PostgreSQL server for tests and benchmarks (initdb + pg_ctl on a temp folder).

Not for clinics (see docs/clinic-server.md for a real server): this starts
the PostgreSQL binaries Debian's ``postgresql`` package installs
(``/usr/lib/postgresql/<version>/bin``) on a fresh data folder, listening on
a free loopback port (and a unix socket inside the folder only), with TLS on a
self-signed certificate when ``openssl`` is there, and removes it all at
:meth:`TempCluster.stop`. Run as root, the server runs as the ``postgres``
user (``initdb`` refuses root) in a folder that user owns.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

SUPERUSER = "vrbalance_admin"


def find_bin_dir() -> Path | None:
    """The folder of ``pg_ctl`` and ``initdb`` (newest Debian version first), or ``None``."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TempCluster:
    """A PostgreSQL cluster in a temporary folder, started and stopped on request.

    Parameters
    ----------
    bin_dir : Path
        Folder with ``initdb``, ``pg_ctl``, ``postgres``.
    durable : bool
        Keep ``fsync`` on (benchmarks); tests turn it off for speed.
    tls : bool
        Serve TLS with a self-signed certificate (needs ``openssl``).

    Attributes
    ----------
    url : str
        ``postgresql://vrbalance_admin:PASSWORD@127.0.0.1:PORT/postgres``.
    password : str
        The superuser's random password (in :attr:`url`: tests check it never
        shows in messages).
    """

    def __init__(self, bin_dir: Path, *, durable: bool = False, tls: bool = True) -> None:
        self.bin_dir = Path(bin_dir)
        self.durable = durable
        self.password = "pw-" + secrets.token_hex(12)
        self.port = 0
        self.root = Path(tempfile.mkdtemp(prefix="vrbpg-"))
        self.data = self.root / "data"
        self.log_file = self.root / "server.log"
        self._as_user: list[str] = []
        self._owner: tuple[int, int] | None = None
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
            self._owner = (pw.pw_uid, pw.pw_gid)
        self.tls = tls and shutil.which("openssl") is not None
        try:
            self._init()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str, user: str = SUPERUSER, password: str | None = None) -> str:
        """URL of ``database`` on this server for ``user`` (superuser by default)."""
        pw = self.password if password is None else password
        return f"postgresql://{user}:{pw}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str | os.PathLike[str], timeout_s: float = 120.0) -> None:
        cmd = [*self._as_user, *map(str, args)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd[len(self._as_user) :])} failed ({proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-2000:]}"
            )

    def _chown(self, path: Path) -> None:
        if self._owner is not None:
            os.chown(path, *self._owner)

    def _init(self) -> None:
        os.chmod(self.root, 0o700)
        self._chown(self.root)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        os.chmod(pwfile, 0o600)
        self._chown(pwfile)
        self._run(
            self.bin_dir / "initdb",
            "-D",
            self.data,
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        )
        pwfile.unlink()
        if self.tls:
            key, cert = self.data / "server.key", self.data / "server.crt"
            subprocess.run(
                [
                    "openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=localhost",
                    "-keyout",
                    str(key),
                    "-out",
                    str(cert),
                ],
                capture_output=True,
                check=True,
                timeout=60,
            )
            for p in (key, cert):
                os.chmod(p, 0o600)
                self._chown(p)

    def start(self) -> None:
        """Start the server (a fresh free port the first time; the same one after)."""
        if not self.port:
            self.port = _free_port()
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-c port={self.port}",
            f"-c unix_socket_directories={self.root}",
            "-c max_connections=60",
            "-c shared_buffers=32MB",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        if self.tls:
            options += ["-c ssl=on"]
        self._run(
            self.bin_dir / "pg_ctl",
            "-D",
            self.data,
            "-l",
            self.log_file,
            "-o",
            " ".join(options),
            "-w",
            "-t",
            "120",
            "start",
        )
        log.info("temporary PostgreSQL on 127.0.0.1:%d (%s)", self.port, self.data)

    def reload(self) -> None:
        """Make the running server re-read its configuration (``pg_hba.conf``)."""
        self._run(self.bin_dir / "pg_ctl", "-D", self.data, "reload")

    def stop(self, *, remove: bool = False) -> None:
        """Stop the server (fast shutdown: open sessions are cut); ``remove`` deletes it."""
        if (self.data / "postmaster.pid").exists():
            self._run(self.bin_dir / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)
