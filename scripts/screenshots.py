"""Regenerate the showcase pictures of the README and the docs site: docs/images/*.png.

    python scripts/screenshots.py                  # starts the demo on a fresh database, shoots, stops it
    python scripts/screenshots.py --url http://127.0.0.1:8000 --out /tmp/shots

It drives the demo in Chromium (``/usr/bin/chromium``, through Playwright): the home page, the
live board as two browsers see it after one of them moved a card, the admin signed in as the
demo's staff account, a feature page in dark mode, and the board in a phone-sized window.
Every request must stay on the demo's host, and no page may log a console error. The PNGs are
recompressed (zlib level 9, metadata chunks dropped); each stays under 150 KB.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "images"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]
SHOTS = ("home", "live-board", "admin", "dark-mode", "phone")
DESKTOP = {"width": 1280, "height": 800}
HOME = {"width": 1280, "height": 720}  # 16:9, and under 150 KB
PHONE = {"width": 375, "height": 740}
BOARD = {"width": 1100, "height": 760}  # each browser of the two-browser picture
ADMIN_EMAIL = "admin@example.com"
TIMEOUT_MS = 15_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
KEPT_CHUNKS = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}


class ScreenshotError(Exception):
    """A page failed while being shot (a console error, a request that left the host...)."""


@dataclass
class Watch:
    """What the pages did that they must not: console errors, failed or outside requests."""

    host: str
    problems: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> Any:
        page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self._failed(r))
        page.on("response", lambda r: r.status >= 400 and self.problems.append(f"{r.status} {r.url}"))
        return page

    def _failed(self, request: Any) -> None:
        if "/_starmodel/live" in request.url:  # a live stream is cut when its page is left
            return
        self.problems.append(f"failed: {request.url} {request.failure}")

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in ("data", "blob", "about") or parts.hostname == self.host


def optimise_png(data: bytes) -> bytes:
    """The same image, its pixel data recompressed at zlib level 9 and its metadata chunks
    (text, time, gamma...) dropped."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG")
    chunks: list[tuple[bytes, bytes]] = []
    pixels = b""
    at = len(PNG_SIGNATURE)
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        at += 12 + length
        if kind == b"IDAT":
            pixels += body
        elif kind in KEPT_CHUNKS:
            chunks.append((kind, body))
    packed = zlib.compress(zlib.decompress(pixels), 9)
    out = [PNG_SIGNATURE]
    for kind, body in chunks:
        if kind == b"IEND":
            out.append(_chunk(b"IDAT", packed))
        out.append(_chunk(kind, body))
    return b"".join(out)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG."""
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def take_screenshots(browser: Any, base_url: str, out_dir: Path, admin_password: str) -> dict[str, Path]:
    """Shoot every picture of ``SHOTS`` from the demo at ``base_url`` into ``out_dir``.

    Raises:
        ScreenshotError: a page logged a console error, a request failed or left the host.
    """
    from playwright.sync_api import expect

    out_dir.mkdir(parents=True, exist_ok=True)
    watch = Watch(urlsplit(base_url).hostname or "")
    contexts: list[Any] = []

    def context(viewport: dict[str, int] = DESKTOP, scheme: str = "light") -> Any:
        made = browser.new_context(viewport=viewport, color_scheme=scheme, device_scale_factor=1)
        made.set_default_timeout(TIMEOUT_MS)
        made.route(lambda url: not watch.allowed(url), lambda route: _refuse(route, watch))
        contexts.append(made)
        return made

    def open_page(made: Any, path: str, ready: str) -> Any:
        page = watch.attach(made.new_page())
        page.goto(base_url + path)
        expect(page.locator(ready).first).to_be_visible(timeout=TIMEOUT_MS)
        page.wait_for_timeout(400)  # the live stream's first patch, the fonts
        return page

    shots: dict[str, bytes] = {}
    try:
        home = open_page(context(HOME), "/", "#home-counter")
        expect(home.locator("#home-counter")).to_have_text(_number())
        shots["home"] = home.screenshot()

        alice, bob = (open_page(context(BOARD), "/board", "#ticket-list") for _ in range(2))
        alice_name = alice.locator("#board-me").inner_text()
        title, lane = _move_a_card(alice, 0)
        expect(bob.locator("[data-testid=ticket]", has_text=title)).to_have_attribute("data-lane", lane)
        expect(bob.locator("#board-feed")).to_contain_text(f"{alice_name} moved “{title}”")
        title, lane = _move_a_card(bob, -1)
        expect(alice.locator("[data-testid=ticket]", has_text=title)).to_have_attribute("data-lane", lane)
        expect(alice.locator("#board-feed")).to_contain_text(bob.locator("#board-me").inner_text())
        for page in (alice, bob):
            _wait_for_lane_counts(page)
            page.wait_for_timeout(300)
        shots["live-board"] = _side_by_side(
            context(),
            (alice_name, alice.locator(".sc-board-wrap").screenshot()),
            (bob.locator("#board-me").inner_text(), bob.locator(".sc-board-wrap").screenshot()),
        )

        staff = context()
        answer = staff.request.post(f"{base_url}/auth/login",
                                    form={"email": ADMIN_EMAIL, "password": admin_password},
                                    headers={"Datastar-Request": "true"})
        if answer.status != 200:
            raise ScreenshotError(f"the demo's staff account could not sign in ({answer.status})")
        admin = open_page(staff, "/admin/product", "table")
        shots["admin"] = admin.screenshot()

        dark = open_page(context(scheme="dark"), "/state", "#counter-value")
        dark.locator("[data-starmodel-theme-picker] button[data-mode=dark]").click()
        expect(dark.locator("html")).to_have_class(_word("dark"))
        dark.click("#counter-inc5")
        expect(dark.locator("#counter-value")).to_have_text("5")
        dark.wait_for_timeout(300)
        shots["dark-mode"] = dark.screenshot()

        phone = open_page(context(PHONE), "/board", "#ticket-list")
        shots["phone"] = phone.screenshot()
    finally:
        for made in contexts:
            with contextlib.suppress(Exception):
                made.close()
    if watch.problems:
        raise ScreenshotError("; ".join(watch.problems))
    written = {}
    for name in SHOTS:
        path = out_dir / f"{name}.png"
        path.write_bytes(optimise_png(shots[name]))
        written[name] = path
    return written


NEXT_LANE = {"todo": "doing", "doing": "done", "done": "todo"}


def _wait_for_lane_counts(page: Any) -> None:
    """Wait until each lane's count (sampled every 2 s by the periodic job) matches its cards,
    so the picture does not show a count from before the moves."""
    page.wait_for_function(
        """() => [...document.querySelectorAll('[id^="lane-count-"]')].every(span => {
            const lane = span.id.slice('lane-count-'.length);
            const cards = document.querySelectorAll(`[data-testid=ticket][data-lane="${lane}"]`);
            return span.textContent.trim() === String(cards.length);
        })""",
        timeout=10_000,
    )


def _move_a_card(page: Any, index: int) -> tuple[str, str]:
    """Move the board's first (``0``) or last (``-1``) card to its next lane, as a click does;
    returns its title and the lane it goes to (whatever lanes earlier runs left the cards in)."""
    cards = page.locator("[data-testid=ticket]")
    if cards.count() == 0:
        raise ScreenshotError("the board has no card to move")
    card = cards.nth(index if index >= 0 else cards.count() + index)
    title = card.locator(".sc-ticket-title").inner_text()
    lane = NEXT_LANE[card.get_attribute("data-lane") or "todo"]
    card.get_by_test_id(f"move-{lane}").click()
    return title, lane


def _refuse(route: Any, watch: Watch) -> None:
    watch.problems.append(f"left the host: {route.request.url}")
    route.abort("internetdisconnected")


def _number() -> Any:
    import re

    return re.compile(r"^-?\d+$")


def _word(word: str) -> Any:
    import re

    return re.compile(rf"\b{word}\b")


def _side_by_side(made: Any, left: tuple[str, bytes], right: tuple[str, bytes]) -> bytes:
    """Two browsers' screenshots next to each other, each under its visitor's name."""
    figures = "".join(
        f'<figure><figcaption>Browser {n}: {name}</figcaption>'
        f'<img src="data:image/png;base64,{base64.b64encode(shot).decode()}"></figure>'
        for n, (name, shot) in zip("AB", (left, right), strict=True)
    )
    page = made.new_page()
    page.set_viewport_size({"width": 1600, "height": 400})
    page.set_content(
        "<style>body{margin:0;background:#e2e8f0;font:600 14px system-ui,sans-serif;color:#0f172a}"
        "main{display:flex;gap:16px;padding:14px}figure{margin:0;flex:1}"
        "figcaption{margin:0 0 6px 2px}img{width:100%;border-radius:8px;"
        "box-shadow:0 4px 14px rgb(0 0 0/.18)}</style><main>" + figures + "</main>"
    )
    page.wait_for_function("() => [...document.images].every((i) => i.complete)")
    return bytes(page.screenshot(full_page=True))


# --- running the demo ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def demo_server(folder: Path) -> Iterator[str]:
    """``starmodel run demo`` on a free port and a fresh SQLite file in ``folder`` (seeded at
    start), with the page assets found as the CLI finds them; stopped on exit."""
    port = free_port()
    dropped = ("REDIS_URL", "DATABASE_URL", "DEMO_ADMIN_PASSWORD")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(DATABASE_URL=f"sqlite:///{folder / 'demo.db'}", STARMODEL_ASSETS="local", PYTHONUNBUFFERED="1",
               SECRET_KEY=env.get("SECRET_KEY", "screenshots"), PYTHONPATH=str(REPO))
    log = (folder / "demo.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "starmodel.cli.main", "run", "demo", "--port", str(port), "--no-reload"],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise ScreenshotError(f"the demo exited:\n{(folder / 'demo.log').read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if time.monotonic() > deadline:
                log_text = (folder / "demo.log").read_text()
                raise ScreenshotError(f"the demo did not answer in 30 s:\n{log_text}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate docs/images/*.png from the demo, in Chromium.")
    parser.add_argument("--out", type=Path, default=OUT, help="where the PNGs go (default: docs/images)")
    parser.add_argument("--url", help="a demo already running (default: start one on a fresh database)")
    parser.add_argument("--password", default=os.environ.get("DEMO_ADMIN_PASSWORD") or "starmodel-demo",
                        help="the demo's staff password (default: DEMO_ADMIN_PASSWORD, else the demo's)")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="starmodel-shots-")))
            url = stack.enter_context(demo_server(folder))
        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        stack.callback(browser.close)
        try:
            written = take_screenshots(browser, url.rstrip("/"), args.out, args.password)
        except ScreenshotError as exc:
            print(f"screenshots failed: {exc}", file=sys.stderr)
            return 1
    for name, path in written.items():
        data = path.read_bytes()
        width, height = png_size(data)
        print(f"{path}: {width}x{height}, {len(data) // 1024} KB ({name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
