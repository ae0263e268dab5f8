"""What the library's two pages (the model explorer, the reader study) share: a WSGI server on
the loopback interface only, quiet, that says where it listens.

The pages are bottle apps (a small, well-kept framework: one file, no dependencies); this module
serves them with the standard library's `wsgiref` server, one request at a time (a page asks for
one picture at a time, and one writer keeps the reader study's answer files simple).
"""

from __future__ import annotations

import base64
import io
import ipaddress
import socket
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import numpy as np
from PIL import Image

from jaxsyn.errors import ConfigError

LOOPBACK_NAMES = ("localhost",)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002  (the base class's name)
        pass  # one line per picture would bury the URL the user needs


def loopback_server(app, host: str = "127.0.0.1", port: int = 0) -> WSGIServer:
    """A server for `app` bound to `host`:`port` (0: a free port; read `server.server_port`).

    Only a loopback address is accepted: the pages show unpublished models and a study's images,
    and answer anyone who can reach them.
    """
    if not is_loopback(host):
        raise ConfigError(f"--host {host}: not a loopback address; expected 127.0.0.1")
    try:
        return make_server(host, port, app, handler_class=_QuietHandler)
    except OSError as e:
        raise ConfigError(f"--port {port}: cannot listen on {host}:{port} ({e.strerror})") from e


def guard(app) -> None:
    """Refuse requests not meant for this loopback page: a Host header that is not a loopback
    name (a DNS-rebinding page reading ours) and a POST sent from another site's page (a form on
    any web page can POST to 127.0.0.1, e.g. answers in a reader's name)."""
    import bottle

    @app.hook("before_request")
    def _check():
        host = bottle.request.get_header("Host", "")
        if not is_loopback(urlsplit(f"//{host}").hostname or ""):
            bottle.abort(403, f"Host {host!r}: this page answers on a loopback address only")
        origin = bottle.request.get_header("Origin")
        if bottle.request.method == "POST" and origin and urlsplit(origin).netloc != host:
            bottle.abort(403, f"Origin {origin!r}: a form of another page")


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_forever(server: WSGIServer, what: str) -> None:
    """Print the page's address and serve until Ctrl-C."""
    host = server.server_address[0]
    print(f"{what} on http://{host}:{server.server_port}/ (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now on `host` (tests start a server process on it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def png_bytes(grey: np.ndarray) -> bytes:
    """uint8 [H, W] or [H, W, 3] as PNG bytes, with no text chunks (nothing but the pixels)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(grey)).save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(grey: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(grey)).decode()


def to_uint8(x: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """`x` mapped linearly from `window` (lo, hi) to 0..255 and clipped."""
    lo, hi = window
    return (
        (np.clip((np.asarray(x, np.float64) - lo) / (hi - lo), 0, 1) * 255).round().astype(np.uint8)
    )
