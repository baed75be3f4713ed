"""A package registry on 127.0.0.1 for the tests that need one to misbehave: npm metadata and
tarballs, and a PyPI simple index in its HTML form (PEP 503), serving made-up packages with
the pinned names and members. ``tampered`` serves other bytes than the hashes promise;
``offline_env`` makes every registry unreachable."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from starmodel.adapters.driving.web.asset_bundle import BUNDLE, RegistryPackage

__all__ = ["LocalRegistry", "local_registry", "offline_env"]


def _archive(package: RegistryPackage) -> tuple[str, bytes]:
    """``(file name, bytes)`` of a made-up archive holding the package's members."""
    buffer = io.BytesIO()
    if package.registry == "npm":
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for member in package.files:
                data = f"/* {package.name} {member} */".encode()
                info = tarfile.TarInfo(member)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        return f"{package.name.rsplit('/', 1)[-1]}-{package.version}.tgz", buffer.getvalue()
    with zipfile.ZipFile(buffer, "w") as wheel:
        for member in package.files:
            wheel.writestr(member, f"/* {package.name} {member} */")
    return f"{package.name.replace('-', '_')}-{package.version}-py3-none-any.whl", buffer.getvalue()


@dataclass
class LocalRegistry:
    port: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    tampered: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """The settings that point the asset fetcher here."""
        base = f"http://127.0.0.1:{self.port}"
        return {"NPM_CONFIG_REGISTRY": f"{base}/npm/", "PIP_INDEX_URL": f"{base}/simple/"}

    def __post_init__(self) -> None:
        self.archives = {package.name: _archive(package) for package in BUNDLE}
        self.files = dict(self.archives.values())

    def answer(self, path: str) -> tuple[int, str, bytes]:
        self.requests.append(path)
        for package in BUNDLE:
            filename, data = self.archives[package.name]
            if package.registry == "npm" and path == f"/npm/{package.name}/{package.version}":
                sri = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
                meta = {"name": package.name, "version": package.version,
                        "dist": {"tarball": f"/files/{filename}", "integrity": sri}}
                return 200, "application/json", json.dumps(meta).encode()
            if package.registry == "pypi" and path == f"/simple/{package.name}/":
                digest = hashlib.sha256(data).hexdigest()
                page = f'<html><body><a href="/files/{filename}#sha256={digest}">{filename}</a></body></html>'
                return 200, "text/html", page.encode()
        name = path.removeprefix("/files/")
        if path.startswith("/files/") and name in self.files:
            data = self.files[name]
            return 200, "application/octet-stream", data + b"x" if name in self.tampered else data
        return 404, "text/plain", b"not found"


@contextmanager
def local_registry() -> Iterator[LocalRegistry]:
    registry = LocalRegistry()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, kind, body = registry.answer(self.path)
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    registry.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield registry
    finally:
        server.shutdown()
        server.server_close()


def offline_env() -> dict[str, str]:
    """Every HTTP(S) request goes to a proxy that is not there: no registry can be reached."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{sock.getsockname()[1]}"  # closed again when this returns
    return {"https_proxy": proxy, "http_proxy": proxy, "HTTPS_PROXY": proxy, "HTTP_PROXY": proxy,
            "no_proxy": ""}
