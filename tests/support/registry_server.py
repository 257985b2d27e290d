"""The real CNCF distribution registry (Debian package ``docker-registry``) as a local process, without pytest.

One implementation for the tests (``tests/support/registry.py`` wraps it in fixtures) and the benchmarks
(``benchmarks/services.py``). :func:`start_registry` runs ``docker-registry serve`` on ``127.0.0.1:<free port>``
with filesystem storage under a directory and deletes enabled, optionally behind htpasswd Basic auth or a
Bearer token service (:func:`start_token_server`, an in-process ES256 JWT issuer; needs ``cryptography``).
A missing tool raises :class:`Unavailable` before anything starts; ``ENVGRAPH_TEST_REGISTRY_BIN`` points at
another binary.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

__all__ = [
    "Unavailable",
    "RunningRegistry",
    "TokenServer",
    "MISSING_BINARY",
    "registry_binary",
    "htpasswd_line",
    "start_registry",
    "start_token_server",
]


class Unavailable(RuntimeError):
    """A tool the registry needs is not installed (the binary, htpasswd or bcrypt, cryptography)."""


MISSING_BINARY = (
    "docker-registry binary not found (apt install docker-registry, or set ENVGRAPH_TEST_REGISTRY_BIN)"
)

STARTUP_TIMEOUT = 15.0
TEST_USER = "envgraph"
TEST_PASSWORD = "s3cret-pass"


@dataclass
class RunningRegistry:
    host: str
    url: str
    storage: Path
    log: Path
    process: subprocess.Popen[bytes]
    username: str | None = None
    password: str | None = None
    token_server: TokenServer | None = None

    def blob_data_path(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob's bytes (for corrupting it in tests)."""
        hexd = digest.split(":", 1)[1]
        return self.storage / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexd[:2] / hexd / "data"


def registry_binary() -> str | None:
    override = os.environ.get("ENVGRAPH_TEST_REGISTRY_BIN")
    if override:
        return override if os.access(override, os.X_OK) else None
    return shutil.which("docker-registry") or shutil.which("registry")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def htpasswd_line(user: str, password: str) -> str:
    """A bcrypt htpasswd entry: ``htpasswd -Bbn`` (apache2-utils), else the ``bcrypt`` module."""
    tool = shutil.which("htpasswd")
    if tool:
        out = subprocess.run([tool, "-Bbn", user, password], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    try:
        import bcrypt  # type: ignore[import-not-found]
    except ImportError:
        raise Unavailable(
            "neither htpasswd (apt install apache2-utils) nor the bcrypt module is available"
        ) from None
    return f"{user}:" + bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()


@dataclass
class TokenServer:
    """A distribution token service: GET ``/token?service=..&scope=..`` with Basic auth -> ES256 JWT."""

    url: str
    service: str
    issuer: str
    cert_path: Path
    username: str
    password: str
    requests: list[dict[str, list[str]]] = field(default_factory=list)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@contextmanager
def start_token_server(workdir: Path, username: str, password: str) -> Iterator[TokenServer]:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
        from cryptography.x509.oid import NameOID
    except ImportError:
        raise Unavailable("the token-auth registry needs the cryptography package") from None

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "envgraph test token signer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = workdir / "token-signer.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")

    server_info = TokenServer(
        url="",
        service="envgraph-test-registry",
        issuer="envgraph-test-issuer",
        cert_path=cert_path,
        username=username,
        password=password,
    )

    def issue(scopes: list[str], subject: str) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            repo, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": repo, "actions": [a for a in actions.split(",") if a]})
        t = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [x5c]}
        claims = {
            "iss": server_info.issuer,
            "sub": subject,
            "aud": server_info.service,
            "exp": t + 300,
            "nbf": t - 10,
            "iat": t,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            query = parse_qs(urlsplit(self.path).query)
            server_info.requests.append(query)
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = json.dumps({"token": issue(query.get("scope", []), username), "expires_in": 300}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_info.url = f"http://127.0.0.1:{httpd.server_address[1]}/token"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_info
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _config(port: int, storage: Path, htpasswd: Path | None, token: TokenServer | None = None) -> str:
    lines = [
        "version: 0.1",
        "log:",
        "  level: warn",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {storage}",
        "  delete:",
        "    enabled: true",
        "  maintenance:",
        "    uploadpurging:",
        "      enabled: false",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        "  secret: envgraph-test-secret",
    ]
    if htpasswd is not None:
        lines += ["auth:", "  htpasswd:", "    realm: envgraph-test", f"    path: {htpasswd}"]
    elif token is not None:
        lines += [
            "auth:",
            "  token:",
            f"    realm: {token.url}",
            f"    service: {token.service}",
            f"    issuer: {token.issuer}",
            f"    rootcertbundle: {token.cert_path}",
        ]
    return "\n".join(lines) + "\n"


@contextmanager
def start_registry(
    workdir: Path,
    *,
    basic_auth: tuple[str, str] | None = None,
    token_server: TokenServer | None = None,
) -> Iterator[RunningRegistry]:
    """Run ``docker-registry serve`` under ``workdir`` until the block exits.

    Raises :class:`Unavailable` when the binary is missing, RuntimeError when it does not start."""
    binary = registry_binary()
    if binary is None:
        raise Unavailable(MISSING_BINARY)
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    htpasswd: Path | None = None
    if basic_auth is not None:
        htpasswd = workdir / "htpasswd"
        htpasswd.write_text(htpasswd_line(*basic_auth) + "\n")
    # REGISTRY_* variables override the config file: keep the caller's out.
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}

    last_error = ""
    for _attempt in range(3):  # another process may grab the free port between probe and bind
        port = _free_port()
        config = workdir / "config.yml"
        config.write_text(_config(port, storage, htpasswd, token_server))
        log = workdir / "registry.log"
        with open(log, "wb") as log_file:
            proc = subprocess.Popen(
                [binary, "serve", str(config)], stdout=log_file, stderr=subprocess.STDOUT, env=env
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if requests.get(f"{url}/v2/", timeout=1).status_code in (200, 401):
                    ready = True
                    break
            except requests.RequestException:
                pass
            time.sleep(0.05)
        if ready:
            running = RunningRegistry(
                host=f"127.0.0.1:{port}",
                url=url,
                storage=storage,
                log=log,
                process=proc,
                username=basic_auth[0] if basic_auth else (token_server.username if token_server else None),
                password=basic_auth[1] if basic_auth else (token_server.password if token_server else None),
                token_server=token_server,
            )
            try:
                yield running
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        last_error = log.read_text(errors="replace").strip()[-2000:]
    raise RuntimeError(f"docker-registry did not start: {last_error}")
