"""Presence in one process: the memory tracker (expiry on a clock moved by hand), the service
(joins, leaves, beats, one entry per person), the live streams that join and leave, what
event bodies and pages read, and what an entity may declare."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from starmodel import (
    CallContext,
    ConfigurationError,
    Entity,
    StarModel,
    StateStore,
    StoreUnavailable,
    Viewer,
    default_viewer,
    event,
    presence_of,
)
from starmodel.adapters.driven.presence import MemoryPresenceTracker
from starmodel.app.bus import InProcessBus
from starmodel.app.presence import PresenceService
from starmodel.core.presence import PresenceChanged


class Clock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Board(Entity):
    model_config = {"scope": "global", "presence": True, "namespace": "pu_board"}
    title: str = ""

    @event
    async def who(self) -> None:
        self.title = ", ".join(v.name for v in await presence_of(self))


class Secret(Entity):
    model_config = {
        "scope": "global", "presence": True, "namespace": "pu_secret", "policy": {"read": False},
    }
    n: int = 0


class Plain(Entity):
    model_config = {"scope": "global", "namespace": "pu_plain"}
    n: int = 0


def ada(since: float = 0.0) -> Viewer:
    return Viewer("u-ada", "Ada Lovelace", since=since)


def grace(since: float = 0.0) -> Viewer:
    return Viewer("u-grace", "grace", since=since)


# --- the memory tracker ----------------------------------------------------------------------


async def test_a_joined_connection_is_a_viewer_until_it_leaves() -> None:
    tracker = MemoryPresenceTracker(Clock())
    await tracker.join("doc:1", "c1", ada(1), ttl=15)
    await tracker.join("doc:1", "c2", grace(2), ttl=15)
    await tracker.join("doc:2", "c3", grace(3), ttl=15)
    assert [v.name for v in await tracker.viewers("doc:1")] == ["Ada Lovelace", "grace"]
    await tracker.leave("doc:1", "c1")
    assert await tracker.viewers("doc:1") == [grace(2)]
    assert await tracker.viewers("doc:2") == [grace(3)]
    assert await tracker.viewers("doc:3") == []


async def test_a_connection_without_beats_expires_after_its_ttl() -> None:
    clock = Clock()
    tracker = MemoryPresenceTracker(clock)
    await tracker.join("doc:1", "c1", ada(), ttl=15)
    await tracker.join("doc:1", "c2", grace(), ttl=15)
    clock.now += 10
    await tracker.update({"doc:1": {"c2": grace()}}, {}, ttl=15)  # only c2's process is alive
    clock.now += 5.5
    assert await tracker.viewers("doc:1") == [grace()]
    clock.now += 10
    assert await tracker.viewers("doc:1") == []


async def test_a_beat_brings_back_a_connection_the_tracker_dropped() -> None:
    clock = Clock()
    tracker = MemoryPresenceTracker(clock)
    await tracker.join("doc:1", "c1", ada(), ttl=1)
    clock.now += 2  # the process was frozen longer than the ttl
    assert await tracker.viewers("doc:1") == []
    await tracker.update({"doc:1": {"c1": ada()}}, {}, ttl=1)
    assert await tracker.viewers("doc:1") == [ada()]


# --- the service -----------------------------------------------------------------------------


class Heard:
    """A listener that remembers what it was told."""

    def __init__(self) -> None:
        self.told: list[tuple[str, str, list[str]]] = []

    async def __call__(self, namespace: str, key: str, viewers: list[Viewer]) -> None:
        self.told.append((namespace, key, [v.name for v in viewers]))


def service(clock: Clock, bus: InProcessBus | None = None) -> tuple[PresenceService, Heard, list[Any]]:
    bus = bus or InProcessBus()
    facts: list[Any] = []

    async def record(fact: Any) -> None:
        facts.append(fact)

    bus.subscribe(PresenceChanged, record)
    presence = PresenceService(MemoryPresenceTracker(clock), bus, ttl=15, beat=5, clock=clock)
    heard = Heard()
    presence.listeners.append(heard)
    return presence, heard, facts


async def test_joining_and_leaving_are_told_to_the_bus_and_to_the_listeners() -> None:
    presence, heard, facts = service(Clock())
    await presence.join("pu_board", "global", "c1", ada())
    await presence.idle()
    await presence.join("pu_board", "global", "c2", grace())
    await presence.idle()
    await presence.leave("pu_board", "global", "c1")
    await presence.idle()
    assert facts == [PresenceChanged("pu_board", "global")] * 3
    assert heard.told == [
        ("pu_board", "global", ["Ada Lovelace"]),
        ("pu_board", "global", ["Ada Lovelace", "grace"]),
        ("pu_board", "global", ["grace"]),
    ]
    await presence.stop()


async def test_a_burst_of_changes_is_pushed_once() -> None:
    presence, heard, facts = service(Clock())
    for n in range(20):
        await presence.join("pu_board", "global", f"c{n}", Viewer(f"v{n}", f"Viewer {n}"))
    await presence.leave("pu_board", "global", "c0")
    await presence.idle()
    assert len(facts) == 21
    assert len(heard.told) == 1 and len(heard.told[0][2]) == 19
    await presence.stop()


async def test_a_person_with_two_tabs_counts_once() -> None:
    presence, _, _ = service(Clock())
    await presence.join("pu_board", "global", "tab1", ada(1))
    await presence.join("pu_board", "global", "tab2", ada(2))
    assert await presence.of(Board) == [ada(1)]
    await presence.leave("pu_board", "global", "tab1")
    assert await presence.of(Board) == [ada(2)]  # still there: the other tab is open
    await presence.stop()


async def test_a_beat_keeps_this_process_viewers_and_drops_the_expired_ones() -> None:
    clock = Clock()
    presence, heard, _ = service(clock)
    await presence.tracker.join("pu_board:global", "elsewhere", grace(), ttl=15)  # another process
    await presence.join("pu_board", "global", "here", ada())
    await presence.idle()
    assert heard.told[-1][2] == ["grace", "Ada Lovelace"]
    for _ in range(4):  # 20 s: the other process stopped beating, this one beats every 5 s
        clock.now += 5
        await presence.beat_once()
    assert heard.told[-1] == ("pu_board", "global", ["Ada Lovelace"])
    told = len(heard.told)
    clock.now += 5
    await presence.beat_once()
    assert len(heard.told) == told  # nothing changed: nothing told
    await presence.stop()


async def test_a_stopping_server_lets_its_viewers_go() -> None:
    presence, _, _ = service(Clock())
    await presence.join("pu_board", "global", "c1", ada())
    await presence.stop()
    assert await presence.of(Board) == []


def test_the_beat_must_be_shorter_than_the_ttl() -> None:
    with pytest.raises(ConfigurationError, match="presence_beat"):
        PresenceService(MemoryPresenceTracker(), InProcessBus(), ttl=5, beat=5)


async def test_reading_the_presence_of_a_class_that_keeps_none_is_a_clear_error() -> None:
    presence, _, _ = service(Clock())
    with pytest.raises(ConfigurationError, match="model_config\\['presence'\\] = True"):
        await presence.of(Plain)
    with pytest.raises(ConfigurationError, match="needs the instance's key"):
        await presence.of(Board, "../etc")


# --- who a caller is -------------------------------------------------------------------------


class FakeUser:
    def __init__(self, id: int, email: str, name: str = "") -> None:
        self.id, self.email, self.name = id, email, name


def test_a_visitor_is_a_guest_whose_id_is_not_the_session_id() -> None:
    viewer = default_viewer(CallContext(session_id="secret-session-value"))
    assert viewer.name.startswith("Guest ") and viewer.initials == "G" + viewer.name[6].upper()
    assert "secret-session-value" not in json.dumps(viewer.to_json())
    assert default_viewer(CallContext(session_id="secret-session-value")).id == viewer.id


def test_a_signed_in_user_is_shown_by_name_else_by_the_start_of_the_email() -> None:
    named = default_viewer(CallContext(session_id="s", user=FakeUser(7, "ada@example.com", "Ada Lovelace")))
    assert (named.name, named.initials) == ("Ada Lovelace", "AL")
    unnamed = default_viewer(CallContext(session_id="s2", user=FakeUser(7, "ada@example.com")))
    assert unnamed.name == "ada" and unnamed.id == named.id  # the same user on another browser
    assert "example.com" not in json.dumps(unnamed.to_json())


# --- what an entity may declare --------------------------------------------------------------


def test_presence_must_be_true_or_false() -> None:
    with pytest.raises(ConfigurationError, match="presence must be True or False"):
        class Wrong(Entity):
            model_config = {"scope": "global", "presence": "yes", "abstract": True}


def test_a_session_entity_cannot_keep_presence() -> None:
    with pytest.raises(ConfigurationError, match="presence applies to records"):
        class Mine(Entity):
            model_config = {"scope": "session", "presence": True, "abstract": True}


# --- through the app: live streams, pages and events -----------------------------------------


@pytest.fixture
async def sm(tmp_path: Any) -> Any:
    app = StarModel(entities=[Board, Secret, Plain], secret_key="unit",
                    migrations_dir=str(tmp_path / "none"))
    async with app.app.router.lifespan_context(app.app):
        yield app


async def settle(condition: Any, timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.01)


async def test_a_tab_joins_while_its_live_stream_is_open_and_every_tab_gets_the_list(sm: Any) -> None:
    first, body1 = sm.open_live_stream("session-1", "tab-1", here=[(Board, "global")])
    await body1.__anext__()
    _, body2 = sm.open_live_stream("session-2", "tab-2", here=[(Board, "global")])
    await body2.__anext__()

    async def both() -> bool:
        return len(await sm.presence.of(Board)) == 2

    await settle(both)
    await settle(lambda: _async(any('data-count="2"' in m for m in _texts(first))))
    pushed = [m for m in _texts(first) if "presence-pu_board-global" in m][-1]
    assert "datastar-patch-elements" in pushed and "2 viewing" in pushed
    await body2.aclose()

    async def one() -> bool:
        return len(await sm.presence.of(Board)) == 1

    await settle(one)
    await settle(lambda: _async('data-count="1"' in _texts(first)[-1]))
    await body1.aclose()


async def _async(value: bool) -> bool:
    return value


async def test_a_tab_does_not_join_what_it_may_not_read_or_what_keeps_no_presence(sm: Any) -> None:
    stream, body = sm.open_live_stream("session-1", "tab-1", here=[(Secret, "global"), (Plain, "global")])
    await body.__anext__()
    await asyncio.sleep(0.05)
    assert stream.presence is None
    assert await sm.presence.of(Secret) == []
    await body.aclose()


async def test_an_event_body_reads_who_is_looking(sm: Any) -> None:
    sm.presence.describe(lambda ctx: Viewer("v-" + ctx.session_id, ctx.session_id.title()))
    _, body = sm.open_live_stream("ada", "tab-1", here=[(Board, "global")])
    await body.__anext__()
    await settle(lambda: _viewers(sm, 1))
    await sm.call(Board, "who")
    assert (await sm.load(Board)).title == "Ada"
    await body.aclose()


async def _viewers(sm: Any, count: int) -> bool:
    return len(await sm.presence.of(Board)) == count


async def test_presence_of_outside_an_event_says_where_it_works() -> None:
    with pytest.raises(ConfigurationError, match="inside an @event"):
        await presence_of(Board)


async def test_the_page_helper_draws_the_viewers_and_names_the_instance(sm: Any) -> None:
    await sm.presence.join("pu_board", "global", "c1", Viewer("u-1", "Ada Lovelace"))
    html = str(to_html(await sm.presence_view(Board)))
    assert 'id="presence-pu_board-global"' in html
    assert 'data-signals="{&quot;smhere&quot;: {&quot;pu_board&quot;: {&quot;global&quot;: true}}}"' in html
    assert ">AL<" in html and "1 viewing" in html and 'title="Ada Lovelace"' in html
    custom = str(to_html(await sm.presence_view(Board, render=lambda viewers: f"{len(viewers)} here")))
    assert "1 here" in custom


def to_html(element: Any) -> str:
    from fasthtml.common import to_xml

    return str(to_xml(element))


def test_the_live_stream_sends_what_the_page_shows(sm: Any) -> None:
    """The page's live stream sends ``smhere`` (what the page shows) with ``smwatch``."""
    footer = str(to_html(sm.app.ftrs))
    assert "filterSignals: {include: /^(smwatch|smhere)\\./}" in footer


def test_an_entity_that_keeps_presence_says_so(sm: Any) -> None:
    assert Board.options().presence and not Plain.options().presence
    assert StateStore.SERVER_MEMORY is Board.options().store


# --- when the tracker cannot be reached ------------------------------------------------------


class FlakyTracker(MemoryPresenceTracker):
    """A memory tracker that refuses every call while ``down`` (as Redis away would)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("Redis is unreachable")

    async def update(self, joined: Any, left: Any, ttl: float) -> None:
        self._check()
        await super().update(joined, left, ttl)

    async def viewers(self, topic: str) -> list[Viewer]:
        self._check()
        return await super().viewers(topic)


async def test_while_the_tracker_is_away_nobody_is_listed_and_the_next_beat_writes_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    tracker = FlakyTracker(clock)
    presence = PresenceService(tracker, InProcessBus(), ttl=15, beat=5, clock=clock)
    tracker.down = True
    await presence.join("pu_board", "global", "c1", ada())  # refused: no error for the tab
    assert await presence.of(Board) == []
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "presence cannot be kept" in warnings[0].getMessage()
    tracker.down = False
    await presence.beat_once()
    assert await presence.of(Board) == [ada()]
    await presence.stop()


def test_the_times_are_settings_and_the_beat_is_shorter_than_the_ttl() -> None:
    from starmodel import Settings

    env = {"STARMODEL_PRESENCE_TTL": "8", "STARMODEL_PRESENCE_BEAT": "2.5"}
    assert (Settings.from_env(env).presence_ttl, Settings.from_env(env).presence_beat) == (8.0, 2.5)
    assert (Settings.from_env({}).presence_ttl, Settings.from_env({}).presence_beat) == (15.0, 5.0)
    with pytest.raises(ConfigurationError, match="presence_beat must be shorter than presence_ttl"):
        Settings.from_env({"STARMODEL_PRESENCE_TTL": "4"})
    with pytest.raises(ConfigurationError, match="STARMODEL_PRESENCE_BEAT must be a positive number"):
        Settings.from_env({"STARMODEL_PRESENCE_BEAT": "soon"})


async def test_a_leave_the_tracker_refused_is_written_with_the_next_beat() -> None:
    clock = Clock()
    tracker = FlakyTracker(clock)
    presence = PresenceService(tracker, InProcessBus(), ttl=15, beat=5, clock=clock)
    await presence.join("pu_board", "global", "c1", ada())
    await presence.join("pu_board", "global", "c2", grace())
    tracker.down = True
    await presence.leave("pu_board", "global", "c1")
    tracker.down = False
    assert [v.name for v in await presence.of(Board)] == ["Ada Lovelace", "grace"]  # not yet
    await presence.beat_once()
    assert await presence.of(Board) == [grace()]
    await presence.stop()


def _texts(stream: Any) -> list[str]:
    """What a live stream has waiting, as text (it keeps the encoded bytes)."""
    return [raw.decode() for raw in stream.pending]
