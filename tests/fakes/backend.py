"""A recording stand-in for the Rails backend's callback endpoint (tests of callbacks and of the fleet).

It listens on 127.0.0.1: a job `callback_url` pointing at it is refused unless the test sets
CALLBACK_ALLOW_PRIVATE_NETWORKS (BACKEND_URL is trusted as configured).
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.raw)  # type: ignore[no-any-return]

    def header(self, name: str) -> str | None:
        """A header by name, whatever its case on the wire (None when absent)."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass
class Backend:
    """Answers POSTs from ``script`` (status, headers) in order, then 200; records every request."""

    url: str = ""
    script: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    requests: list[Received] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)  # cleared: requests wait for it
    arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: With TLS: the self-signed certificate, to trust in a client (``ssl.create_default_context(cafile=...)``).
    ca_file: str = ""

    def respond(self, *statuses: int | tuple[int, dict[str, str]]) -> None:
        for s in statuses:
            self.script.append(s if isinstance(s, tuple) else (s, {}))

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r.body for r in self.requests]


def _self_signed(hostname: str, folder: Path) -> tuple[Path, Path]:
    """A certificate for ``hostname`` only (its own CA), and its key, as PEM files in ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@contextmanager
def serve_backend(tls_hostname: str | None = None) -> Iterator[Backend]:
    """The backend on 127.0.0.1; with ``tls_hostname``, over HTTPS with a certificate for that name."""
    state = Backend()
    state.gate.set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.requests.append(Received(self.path, dict(self.headers.items()), raw))
                status, headers = state.script.popleft() if state.script else (200, {})
            state.arrived.set()
            state.gate.wait(5)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with tempfile.TemporaryDirectory(prefix="fake-backend-") as folder:
        scheme = "http"
        if tls_hostname is not None:
            cert_file, key_file = _self_signed(tls_hostname, Path(folder))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert_file, key_file)
            server.socket = context.wrap_socket(server.socket, server_side=True)
            state.ca_file, scheme = str(cert_file), "https"
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        state.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
        try:
            yield state
        finally:
            state.gate.set()
            server.shutdown()
            server.server_close()
