"""The client against what is not a working portal, over real sockets: a host that does not resolve, a closed
port, a web server answering 404 HTML or redirecting. Needs no emulator."""

from __future__ import annotations

import logging
import socket
import threading
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dlt.common.utils import get_exception_trace_chain

from sources.bitrix24.api import AuthError, Bitrix24Client, TransientError, WebhookAuth


def make_client(url: str, **kwargs: float) -> Bitrix24Client:
    settings = {
        "rate": 20.0,
        "max_retries": 3,
        "backoff_base": 0.01,
        "backoff_cap": 0.05,
        "timeout": 5.0,
        **kwargs,
    }
    return Bitrix24Client(WebhookAuth(url), **settings)  # type: ignore[arg-type]


def assert_no_secret(error: BaseException, token: str, log_text: str = "") -> None:
    """The token is nowhere: message, attributes, the exception chain, the formatted traceback, what dlt would
    put into its trace, the logs."""
    assert error.__context__ is None and error.__cause__ is None
    texts = [str(error), repr(error), *map(str, vars(error).values()), log_text]
    texts.append("".join(traceback.format_exception(error)))
    texts.append(repr(get_exception_trace_chain(error)))
    for text in texts:
        assert token not in text


# ------------------------------------------------------------------------------- not a portal

TOKEN = "abcdefghijklmnop"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (
            f"https://portal.invalid/rest/1/{TOKEN}/",
            "cannot reach the portal host portal.invalid: the host name",
        ),
        (
            f"http://127.0.0.1:{closed_port()}/rest/1/{TOKEN}/",
            "cannot reach the portal host 127.0.0.1: connection",
        ),
    ],
    ids=["unresolvable host", "closed port"],  # stable ids: the port differs per collection (pytest-xdist)
)
def test_unreachable_host(url: str, reason: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(url, max_retries=1)
    with pytest.raises(TransientError) as info:
        client.call("crm.deal.list")
    assert str(info.value).startswith(f"crm.deal.list: {reason}")
    assert "2 attempts" in str(info.value)
    assert_no_secret(info.value, TOKEN, caplog.text)


class NotAPortal(BaseHTTPRequestHandler):
    """A web server that is not Bitrix24: 404 HTML for anything, a redirect for /rest/2/..., and for
    /rest/3/... a response whose body stops short of its Content-Length (a connection cut mid-answer)."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/rest/2/"):
            self.send_response(302)
            self.send_header("Location", f"https://renamed.example.com{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/rest/3/"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"result": [')
            self.close_connection = True
            return
        body = b"<html><body><h1>404 Not Found</h1></body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet: the server's access log is not under test."""


@pytest.fixture
def not_a_portal() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotAPortal)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_wrong_url_answering_404_html_is_an_auth_error(not_a_portal: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(f"{not_a_portal}/rest/1/{TOKEN}/")
    with pytest.raises(AuthError, match="HTTP 404.*webhook URL is probably wrong") as info:
        client.call("crm.deal.list")
    assert client.requests_made == 1
    assert '"POST /rest/1/***/crm.deal.list HTTP/1.1" 404' in caplog.text  # urllib3's line, redacted
    assert_no_secret(info.value, TOKEN, caplog.text)


def test_redirect_is_not_followed(not_a_portal: str) -> None:
    client = make_client(f"{not_a_portal}/rest/2/{TOKEN}/")
    with pytest.raises(AuthError, match="redirects to renamed.example.com") as info:
        client.call("crm.deal.list")
    assert client.requests_made == 1
    assert_no_secret(info.value, TOKEN)


def test_response_cut_off_mid_body_is_retried_then_transient(
    not_a_portal: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(f"{not_a_portal}/rest/3/{TOKEN}/", max_retries=2)
    with pytest.raises(TransientError, match="broke: the response was cut off; gave up after 3 attempts") as info:
        client.call("crm.deal.list")
    assert dict(client.stats.retries) == {"connection": 2}
    assert_no_secret(info.value, TOKEN, caplog.text)
