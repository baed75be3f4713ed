"""The demo's journal page without a browser: the whiteboard's events are journaled, the
History fragment lists them, and the undo action puts the latest change back, answers 409 with
the reason when there is nothing left to undo, and refuses cross-site requests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from demo.journal import Whiteboard, install_journal  # noqa: E402
from starmodel import StarModel  # noqa: E402
from starmodel.testing import EventClient  # noqa: E402

pytestmark = pytest.mark.asyncio
DATASTAR = {"Datastar-Request": "true", "Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}


async def test_history_and_undo_of_the_whiteboard(starmodel_app) -> None:  # type: ignore[no-untyped-def]
    sm: StarModel = starmodel_app(Whiteboard)
    install_journal(sm)
    async with EventClient(sm) as client:
        nothing = await client.http.post("/journal/undo", headers=DATASTAR)
        assert nothing.status_code == 409 and "Not undone: nothing to undo" in nothing.text

        assert (await client.call(Whiteboard.write, text="  Ship it  ")).ok
        assert (await client.call(Whiteboard.paint, color="amber")).ok
        assert not (await client.call(Whiteboard.paint, color="purple")).ok  # invalid: no entry
        fragment = await client.http.get("/journal/history", headers=DATASTAR)
        assert fragment.status_code == 200
        assert fragment.text.count('data-testid="journal-entry"') == 2
        assert "Hello, journal" in fragment.text and "Ship it" in fragment.text

        undone = await client.http.post("/journal/undo", headers=DATASTAR)
        assert undone.status_code == 200 and "Undone: paint" in undone.text
        assert '"color":"slate"' in undone.text.replace(" ", "")
        assert (await client.state(Whiteboard)).color == "slate"
        [latest, *_] = await sm.journal.history(Whiteboard, "global")
        assert latest.event == "undo" and latest.changes == {"color": ["amber", "slate"]}

        elsewhere = await client.http.post("/journal/undo", headers={**DATASTAR, "Origin": "https://evil.example",
                                                                       "Sec-Fetch-Site": "cross-site"})
        assert elsewhere.status_code == 403
        assert (await client.state(Whiteboard)).headline == "Ship it"
