"""Parts of the showcase that need no browser: the code panels show exactly the source (the
highlighter adds markup only), the screenshot script's PNG recompression keeps every pixel, and
the board names and samples as it says."""

from __future__ import annotations

import html
import importlib.util
import re
import struct
import sys
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `pytest` run without `python -m`: the demo is not on the path
    sys.path.insert(0, str(REPO))

import demo.activity  # noqa: E402
import demo.batteries  # noqa: E402
import demo.board  # noqa: E402
import demo.journal  # noqa: E402
import demo.layout  # noqa: E402
import demo.pages  # noqa: E402
import demo.products  # noqa: E402
import demo.state  # noqa: E402
import demo.todos  # noqa: E402
from demo.board import BoardFeed, BoardPulse, nickname, spark  # noqa: E402
from demo.layout import highlight, source_of  # noqa: E402

MODULES = [demo.activity, demo.batteries, demo.board, demo.journal, demo.layout, demo.pages,
           demo.products, demo.state, demo.todos]


def shown_text(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_highlighting_keeps_the_source_exactly(module: ModuleType) -> None:
    source = Path(module.__file__ or "").read_text(encoding="utf-8")
    marked = str(highlight(source))
    assert shown_text(marked) == source
    assert '<span class="tk-k">def</span>' in marked or '<span class="tk-k">class</span>' in marked


def test_highlighting_marks_each_kind_of_token() -> None:
    marked = str(highlight('@event\ndef go(self, n: int = 2):  # why\n    return "x" < n\n'))
    assert '<span class="tk-d">event</span>' in marked
    assert '<span class="tk-f">go</span>' in marked
    assert '<span class="tk-b">int</span>' in marked
    assert '<span class="tk-n">2</span>' in marked
    assert '<span class="tk-c"># why</span>' in marked
    assert shown_text(re.search(r'<span class="tk-s">(.*?)</span>', marked)[1]) == '"x"'
    assert "&lt;" in marked  # markup in the code is escaped


def test_unreadable_code_is_shown_plain() -> None:
    assert str(highlight('"""never closed\n')) == '"""never closed\n'


def test_source_of_names_the_file_in_the_repository() -> None:
    file, text = source_of(BoardFeed)
    assert file == "demo/board.py"
    assert text.startswith("class BoardFeed(Entity):")


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("screenshots_script", REPO / "scripts" / "screenshots.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def png(width: int, height: int, rows: bytes, *extra: tuple[bytes, bytes]) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(rows, 1)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + b"".join(chunk(k, v) for k, v in extra)
            + chunk(b"IDAT", body[:10]) + chunk(b"IDAT", body[10:]) + chunk(b"IEND", b""))


def test_png_recompression_keeps_the_pixels_and_drops_metadata() -> None:
    shots = load_script()
    rows = b"".join(b"\x00" + bytes((x * 7 + y) % 256 for x in range(3 * 40)) for y in range(30))
    original = png(40, 30, rows, (b"tEXt", b"Software\x00test"))
    smaller = shots.optimise_png(original)
    assert shots.png_size(smaller) == (40, 30)
    assert b"tEXt" not in smaller
    at, pixels, kinds = 8, b"", []
    while at < len(smaller):
        (length,) = struct.unpack(">I", smaller[at:at + 4])
        kind, body = smaller[at + 4:at + 8], smaller[at + 8:at + 8 + length]
        crc = smaller[at + 8 + length:at + 12 + length]
        assert struct.unpack(">I", crc)[0] == zlib.crc32(kind + body)
        kinds.append(kind)
        pixels += body if kind == b"IDAT" else b""
        at += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]
    assert zlib.decompress(pixels) == rows
    with pytest.raises(ValueError, match="not a PNG"):
        shots.optimise_png(b"GIF89a")


def test_a_browser_session_has_one_stable_name() -> None:
    assert nickname("session-a") == nickname("session-a")
    names = {nickname(f"session-{n}") for n in range(200)}
    assert len(names) > 50
    assert all(re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+", name) for name in names)


async def test_the_feed_keeps_the_last_lines_and_who_acted_last_first(starmodel_client: Any) -> None:
    async with starmodel_client(BoardFeed) as client:
        for n in range(10):
            who = "Sunny Otter" if n % 2 else "Calm Lynx"
            assert (await client.call(BoardFeed.note, text=f"line {n}", who=who)).status == 200
        feed = await client.state(BoardFeed)
    assert [line.split("  ", 1)[1] for line in feed.lines] == [f"line {n}" for n in range(9, 3, -1)]
    assert feed.people == ["Sunny Otter", "Calm Lynx"]  # each once, the last to act first
    assert feed.shown == feed.lines  # full: no padding
    assert feed.initials == ["SO", "CL", "", "", "", ""]
    assert feed.colours[0].startswith("#") and feed.colours[2:] == ["transparent"] * 4


def test_the_pulse_line_spans_the_chart() -> None:
    assert spark([], 1) == ""
    one = spark([3], 3).split()
    assert one[0].startswith("0.0,") and one[-1].startswith(f"{demo.board.SPARK_WIDTH:.1f},")
    line = [tuple(map(float, p.split(","))) for p in spark([0, 5, 10], 10).split()]
    assert [x for x, _ in line] == [0.0, demo.board.SPARK_WIDTH / 2, float(demo.board.SPARK_WIDTH)]
    assert line[0][1] > line[1][1] > line[2][1]  # higher values draw higher
    pulse = BoardPulse(open=[1, 2], done=[0, 1])
    assert pulse.open_line and pulse.done_line
