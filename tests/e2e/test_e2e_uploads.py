"""File uploads in Chromium, on the demo's ``/files`` page served by its own server (its own
files directory): a 20 MB upload whose progress a second browser sees, a file too large refused
with nothing written, a file of the wrong type refused, a name that tries to leave the
directory kept as a plain name, and a refused event that leaves no file behind."""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from .harness import DemoServer, free_port

pytestmark = pytest.mark.e2e

UPLOAD_TIMEOUT_MS = 60_000


@dataclass
class FilesServer(DemoServer):
    """The demo, keeping its files in a directory of the test's."""

    files_dir: Path | None = None

    def server_env(self) -> dict[str, str]:
        return {**super().server_env(), "STARMODEL_FILES_DIR": str(self.files_dir)}


@pytest.fixture(scope="module")
def files_server(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FilesServer]:
    folder = tmp_path_factory.mktemp("files-server")
    server = FilesServer(free_port(), assets_dir, folder / "demo.log", files_dir=folder / "files")
    server.start()
    yield server
    server.stop()
    assert "Traceback" not in server.log(), f"server log has a traceback:\n{server.log()}"


def png(extra: int = 0) -> bytes:
    """A valid PNG image, made ``extra`` bytes larger by a private chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x20\x80\xe0" * 4 for _ in range(4))
    body = chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
    if extra:
        body += chunk(b"smXt", b"\x00" * extra)
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def kept(server: FilesServer) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for part in ("files", "staging"):
        folder = (server.files_dir or Path()) / part
        found[part] = sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    return found


def open_files(context: BrowserContext, server: FilesServer) -> Page:
    page = context.new_page()
    page.goto(server.url + "/files")
    expect(page.locator("[data-testid=progress-picture]")).to_have_attribute("value", "0")
    return page


def record_progress(page: Page) -> None:
    """Keep every value the page's picture progress bar takes, in ``window.__seen``."""
    page.evaluate("""() => {
        window.__seen = [];
        const bar = document.querySelector('[data-testid=progress-picture]');
        new MutationObserver(() => window.__seen.push(Number(bar.value)))
            .observe(bar, {attributes: true, attributeFilter: ['value']});
        const live = document.querySelector('[data-testid=live-picture]');
        new MutationObserver(() => window.__seen.push(live.textContent))
            .observe(live, {childList: true, characterData: true, subtree: true});
    }""")


def test_a_20mb_upload_shows_its_progress_in_another_browser(
    files_server: FilesServer, new_context: Callable[[], BrowserContext], tmp_path: Path
) -> None:
    alice = open_files(new_context(), files_server)
    bob = open_files(new_context(), files_server)
    record_progress(bob)
    image = png(extra=20 * 1024 * 1024)
    big = tmp_path / "big picture.png"
    big.write_bytes(image)
    alice.set_input_files("[data-testid=upload-picture]", files=[big])
    expect(alice.locator("[data-testid=status-picture]")).to_have_text("big picture.png: uploaded",
                                                                        timeout=UPLOAD_TIMEOUT_MS)
    expect(bob.locator("[data-testid=live-picture]")).to_have_text("big picture.png: 100% (done)",
                                                                  timeout=UPLOAD_TIMEOUT_MS)
    seen = bob.evaluate("window.__seen")
    numbers = [v for v in seen if isinstance(v, int | float)]
    assert any(0 < v < 100 for v in numbers), seen  # bob saw it on its way, not only its end
    assert numbers == sorted(numbers), seen
    picture = bob.locator("[data-testid=picture]")
    expect(picture).to_be_visible()
    src = picture.get_attribute("src") or ""
    assert re.fullmatch(r"/_starmodel/files/file_board/-/picture/[0-9a-f]{32}", src)
    loaded = bob.evaluate("(src) => fetch(src).then(r => r.arrayBuffer()).then(b => b.byteLength)", src)
    assert loaded == len(image)
    assert kept(files_server) == {"files": [src.rsplit("/", 1)[1]], "staging": []}
    expect(alice.locator("[data-testid=picture]")).to_have_attribute("src", src)  # the uploader's too


def test_a_file_too_large_is_refused_with_nothing_written(
    files_server: FilesServer, new_context: Callable[[], BrowserContext], tmp_path: Path
) -> None:
    page = open_files(new_context(), files_server)
    before = kept(files_server)
    huge = tmp_path / "huge.png"
    huge.write_bytes(png(extra=26 * 1000 * 1000))
    page.set_input_files("[data-testid=upload-picture]", files=[huge])
    expect(page.locator("[data-testid=status-picture]")).to_have_text("The file is larger than 25 MB")
    assert kept(files_server) == before


def test_a_file_of_the_wrong_type_is_refused(
    files_server: FilesServer, new_context: Callable[[], BrowserContext]
) -> None:
    page = open_files(new_context(), files_server)
    before = kept(files_server)
    page.set_input_files("[data-testid=upload-picture]", files=[
        {"name": "fake.png", "mimeType": "image/png", "buffer": b"<html><script>alert(1)</script>"}])
    expect(page.locator("[data-testid=status-picture]")).to_have_text("The file is not image/png")
    page.set_input_files("[data-testid=upload-document]", files=[
        {"name": "page.html", "mimeType": "text/html", "buffer": b"<html></html>"}])
    status = page.locator("[data-testid=status-document]")
    expect(status).to_contain_text("must be application/pdf, text/plain")
    assert kept(files_server) == before


def test_a_name_that_tries_to_leave_the_directory_is_kept_as_a_plain_name(
    files_server: FilesServer, new_context: Callable[[], BrowserContext]
) -> None:
    page = open_files(new_context(), files_server)
    page.set_input_files("[data-testid=upload-document]", files=[
        {"name": "..\\..\\etc\\passwd", "mimeType": "text/plain", "buffer": b"root:x:0:0"}])
    expect(page.locator("[data-testid=live-document]")).to_have_text("passwd: 100% (done)")
    link = page.locator("[data-testid=document]")
    address = re.compile(r"^/_starmodel/files/file_board/-/document/[0-9a-f]{32}$")
    expect(link).to_have_attribute("href", address)
    root = (files_server.files_dir or Path()).resolve()
    every = [p for p in root.rglob("*") if p.is_file()]
    assert all(re.fullmatch(r"[0-9a-f]{32}", p.name) for p in every)
    response = page.request.get(files_server.url + (link.get_attribute("href") or ""))
    assert response.status == 200 and response.body() == b"root:x:0:0"
    assert response.headers["content-disposition"] == 'attachment; filename="passwd"'
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_refused_event_leaves_no_file(
    files_server: FilesServer, new_context: Callable[[], BrowserContext]
) -> None:
    page = open_files(new_context(), files_server)
    before = kept(files_server)
    page.set_input_files("[data-testid=upload-titled]", files=[
        {"name": "untitled.png", "mimeType": "image/png", "buffer": png(extra=10_000)}])
    expect(page.locator("#starmodel-toasts .starmodel-toast")).to_contain_text("Give the picture a title")
    assert kept(files_server) == before  # neither kept nor left staged

    page.fill("[data-testid=picture-title]", "A sunset")
    page.set_input_files("[data-testid=upload-titled]", files=[
        {"name": "titled.png", "mimeType": "image/png", "buffer": png(extra=10_000)}])
    expect(page.locator("[data-testid=picture-title-shown]")).to_have_text("A sunset")
    after = kept(files_server)
    assert after["staging"] == [] and len(set(after["files"]) - set(before["files"])) == 1
