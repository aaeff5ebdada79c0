"""The console's one authentication path, against a real console process on loopback."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from vrbalance.cli import main
from vrbalance.console.server import COOKIE, TokenGate, check_host, is_loopback
from vrbalance.errors import ConfigError


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(req, timeout=30) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def test_every_request_needs_the_token(console_server: Any) -> None:
    c = console_server
    cookie = {"Cookie": f"{COOKIE}={c.token}"}
    for path in ("/", "/stations", "/_nicegui_ws/socket.io/?EIO=4&transport=polling",
                 "/files/progress/x", "/patient/abc/envelope"):  # fmt: skip
        status, body, _ = _get(c.base + path)
        assert (status, body) == (401, b"token required\n"), path
        status, body, _ = _get(c.base + path, {"Cookie": f"{COOKIE}=not-the-token"})
        assert (status, body) == (403, b"wrong token\n"), path
    status, body, _ = _get(c.base + "/?token=wrong")
    assert (status, body) == (403, b"wrong token\n")
    # The printed URL: the token moves into an HttpOnly cookie and out of the address bar.
    status, _, headers = _get(c.url)
    assert status == 303 and headers["location"] == "/"
    assert f"{COOKIE}={c.token}; Path=/; HttpOnly; SameSite=Strict" in headers["set-cookie"]
    status, body, _ = _get(c.base + "/", cookie)
    assert status == 200 and b"vrbalance console" in body
    status, body, _ = _get(c.base + "/", {"Authorization": f"token {c.token}"})
    assert status == 200


def test_websockets_need_the_token(console_server: Any) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    ws = console_server.base.replace("http://", "ws://")
    uri = f"{ws}/_nicegui_ws/socket.io/?EIO=4&transport=websocket"
    for headers in (None, {"Cookie": f"{COOKIE}=wrong"}):
        with pytest.raises(InvalidStatus) as info:
            connect(uri, additional_headers=headers, proxy=None, open_timeout=30).close()
        assert info.value.response.status_code == 403
        assert not info.value.response.body or b"session" not in info.value.response.body
    # The same socket with the token opens (so the refusals above are the gate's).
    with connect(
        uri,
        additional_headers={"Cookie": f"{COOKIE}={console_server.token}"},
        proxy=None,
        open_timeout=30,
    ) as conn:
        assert conn.recv(timeout=30).startswith("0{")  # engine.io's open packet


def test_a_host_beyond_loopback_needs_tls(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.20")
    assert main(["console", "--host", "0.0.0.0", "--no-browser"]) == 2
    assert "--host 0.0.0.0: the console controls patients' sessions" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="give both or neither"):
        check_host("192.168.1.20", str(tmp_path / "c.pem"), None)
    with pytest.raises(ConfigError, match=r"--tls-cert .*c.pem: no such file"):
        check_host("192.168.1.20", str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))
    (tmp_path / "c.pem").write_text("x")
    (tmp_path / "k.pem").write_text("x")
    check_host("192.168.1.20", str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))
    with pytest.raises(ConfigError, match="never empty"):
        TokenGate(object(), "")


def test_a_page_for_an_unknown_link_says_so(console_server: Any) -> None:
    c = console_server
    cookie = {"Cookie": f"{COOKIE}={c.token}"}
    for path, what in (("/patient/abc", "patient"), ("/patient/abc/envelope", "patient"),
                       ("/results/abc", "session")):  # fmt: skip
        status, body, _ = _get(c.base + path, cookie)
        assert status == 200, path
        assert f"No such {what} (links last while this console runs).".encode() in body, path
