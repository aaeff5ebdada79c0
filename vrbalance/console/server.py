"""Serve the console: one authentication path for every request and websocket, then NiceGUI.

Like Jupyter Server (STYLE.md, anchor 7) the console binds loopback by
default, prints one URL with a random token and opens the browser. Every
HTTP request and every websocket (NiceGUI's socket.io included) passes
through :class:`TokenGate` before anything else runs; no page or handler
decides on its own. The token is accepted from the ``token`` query parameter
(the printed URL: the gate then sets an ``HttpOnly``, ``SameSite=Strict``
cookie and redirects to the same path without it, so the token leaves the
address bar and history), the cookie, or an ``Authorization: token ...``
header. A missing token gets 401, a wrong one 403, and neither gets any data.
There is no way to run the console without a token.

A non-loopback ``--host`` is refused unless a TLS certificate and key are
given (a token sent in clear over a network is no protection).
"""

from __future__ import annotations

import http.cookies
import ipaddress
import logging
import secrets
import socket
import threading
import urllib.parse
import webbrowser
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from vrbalance.errors import ConfigError

log = logging.getLogger(__name__)

COOKIE = "vrbalance_console_token"
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class TokenGate:
    """ASGI middleware: nothing reaches ``app`` without the console's token.

    Parameters
    ----------
    app : ASGI application
    token : str
        The secret (at least 16 characters; empty is refused).
    secure_cookie : bool
        Mark the cookie ``Secure`` (served over TLS).
    """

    def __init__(self, app: Any, token: str, *, secure_cookie: bool = False) -> None:
        if not token or len(token) < 16:
            raise ConfigError("console token: expected at least 16 characters (never empty)")
        self.app = app
        self.token = token
        self.secure_cookie = secure_cookie

    def _check(self, scope: Scope) -> tuple[str | None, bool]:
        """``(presented token or None, came in the query string)``."""
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if "token" in query:
            return query["token"][0], True
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        auth = headers.get("authorization", "")
        if auth.lower().startswith("token "):
            return auth[6:].strip(), False
        if "cookie" in headers:
            jar = http.cookies.SimpleCookie()
            try:
                jar.load(headers["cookie"])
            except http.cookies.CookieError:
                return None, False
            if COOKIE in jar:
                return jar[COOKIE].value, False
        return None, False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)  # lifespan
            return
        presented, in_query = self._check(scope)
        ok = presented is not None and secrets.compare_digest(
            presented.encode(), self.token.encode()
        )
        if not ok:
            status = 401 if presented is None else 403
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            body = (b"token required" if status == 401 else b"wrong token") + b"\n"
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                        (b"cache-control", b"no-store"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if kind == "http" and in_query and scope.get("method") == "GET":
            await self._redirect_without_token(scope, send)
            return
        await self.app(scope, receive, send)

    async def _redirect_without_token(self, scope: Scope, send: Send) -> None:
        query = [
            (k, v)
            for k, v in urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1"))
            if k != "token"
        ]
        target = urllib.parse.quote(scope.get("path", "/")) + (
            "?" + urllib.parse.urlencode(query) if query else ""
        )
        cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
        if self.secure_cookie:
            cookie += "; Secure"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", target.encode()),
                    (b"set-cookie", cookie.encode()),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str, tls_cert: str | None, tls_key: str | None) -> None:
    """Refuse a non-loopback host without TLS, and half a TLS pair.

    Raises
    ------
    ConfigError
        Naming the option.
    """
    if bool(tls_cert) != bool(tls_key):
        raise ConfigError("--tls-cert and --tls-key: give both or neither")
    for option, path in (("--tls-cert", tls_cert), ("--tls-key", tls_key)):
        if path and not Path(path).is_file():
            raise ConfigError(f"{option} {path}: no such file")
    if not is_loopback(host) and not tls_cert:
        raise ConfigError(
            f"--host {host}: the console controls patients' sessions; beyond this machine "
            "(not 127.0.0.1, ::1 or localhost) it is served only over TLS: give --tls-cert "
            "and --tls-key"
        )


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket now (port 0 picks a free one), so the URL is exact."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, reuse_port=False)
    except OSError as exc:
        raise ConfigError(f"--host {host} --port {port}: cannot listen: {exc}") from None
    sock.set_inheritable(False)
    return sock


def url_of(host: str, port: int, token: str, tls: bool) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}/?token={token}"


def serve(
    *,
    host: str,
    port: int,
    db: str | Path | None,
    seconds_scale: float,
    open_browser: bool,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    token: str | None = None,
    announce: Callable[[str], None] = print,
) -> None:
    """Run the console until interrupted (sessions it started keep running)."""
    check_host(host, tls_cert, tls_key)
    import uvicorn
    from fastapi import FastAPI
    from nicegui import ui

    from vrbalance.console.pages import Console, register_pages
    from vrbalance.console.stations import Stations

    token = token or secrets.token_urlsafe(32)
    sock = bind(host, port)
    real_port = sock.getsockname()[1]
    stations = Stations(db=db)
    # Sessions an earlier console started (it crashed or was restarted) that still run.
    adopted = stations.adopt_running()
    if adopted:
        log.info("console: %d running session(s) of an earlier console adopted", len(adopted))
    console = Console(db=db, stations=stations, seconds_scale=seconds_scale)
    web = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    register_pages(console, web)
    ui.run_with(
        web,
        title="vrbalance console",
        show_welcome_message=False,
        reconnect_timeout=10.0,
        favicon="⚖",
    )
    gate = TokenGate(web, token, secure_cookie=bool(tls_cert))
    config = uvicorn.Config(
        gate,
        log_level="warning",
        access_log=False,  # URLs could carry the token; requests are not logged at all
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    url = url_of(host, real_port, token, bool(tls_cert))
    announce(f"console: {url}")
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    try:
        server.run(sockets=[sock])
    finally:
        stations.close()
