"""The parts of file fields alone: names, sizes, rules, formats, signed tokens, the local file
store, and the commit hook that makes files permanent with their entity (against a fake store
that records what it holds)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import ValidationError

from starmodel.adapters.driven.files.local import LocalFileStore
from starmodel.app.file_commits import FileCommit, FileCommits
from starmodel.app.uow import Saved
from starmodel.app.upload_tokens import TokenSigner
from starmodel.app.uploads import sniff
from starmodel.core.entity import Entity
from starmodel.core.errors import ValidationFailed
from starmodel.core.files import (
    CLIENT_INPUT,
    FileRules,
    FileStore,
    StoredFile,
    UploadOffsetMismatch,
    file_fields,
    parse_size,
    safe_name,
)

PNG_HEAD = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8


def stored(file_id: str = "a" * 32, *, size: int = 10, content_type: str = "image/png") -> StoredFile:
    return StoredFile(id=file_id, name="x.png", content_type=content_type, size=size, etag="0" * 64)


@pytest.mark.parametrize("name, clean", [
    ("photo.png", "photo.png"),
    ("../../etc/passwd", "passwd"),
    ("/abs/olute.txt", "olute.txt"),
    ("C:\\Users\\me\\doc.pdf", "doc.pdf"),
    ("nul\x00byte.png", "nulbyte.png"),
    ("\u202etxt.exe", "txt.exe"),
    (".hidden", "hidden"),
    ("..", "file"),
    ("", "file"),
    ('quote"s<and>pipes|.txt', "quotesandpipes.txt"),
    ("a" * 300 + ".jpeg", "a" * 115 + ".jpeg"),
])
def test_a_name_is_cleaned_to_its_last_plain_part(name: str, clean: str) -> None:
    assert safe_name(name) == clean


def test_sizes_read_as_bytes() -> None:
    assert parse_size(5) == 5
    assert parse_size("5MB") == 5_000_000
    assert parse_size("512 KiB") == 524_288
    assert parse_size("1.5kb") == 1500
    with pytest.raises(ValueError, match="not a size"):
        parse_size("five")


def test_rules_match_types_and_sizes() -> None:
    rules = FileRules(max_size="1KB", accept=("image/*", "application/pdf"))
    assert rules.accepts("image/png") and rules.accepts("application/pdf; x=y")
    assert not rules.accepts("text/plain") and not rules.accepts("imagex/png")
    assert rules.problem(stored(size=1000)) is None
    assert rules.problem(stored(size=1001)) == "is larger than 1 KB"
    wrong = rules.problem(stored(content_type="text/plain"))
    assert wrong == "must be image/*, application/pdf (not text/plain)"
    assert FileRules(accept="image/*").images_only and not rules.images_only
    assert FileRules().accepts("anything/at-all")
    with pytest.raises(ValueError, match="not a content type"):
        FileRules(accept="images")
    with pytest.raises(ValueError, match="positive"):
        FileRules(max_size=0)


class Album(Entity):
    model_config = {"namespace": "unit_album"}
    cover: Annotated[StoredFile | None, FileRules(max_size=100, accept="image/*")] = None
    scan: StoredFile | None = None
    title: str = ""


def test_a_file_field_checks_its_rules_and_refuses_a_clients_facts() -> None:
    assert set(file_fields(Album)) == {"cover", "scan"}
    assert file_fields(Album)["scan"].max_size == 10_000_000  # the defaults
    album = Album(cover=stored(size=100))
    with pytest.raises(ValidationError, match="larger than 100 bytes"):
        album.cover = stored(size=101)
    with pytest.raises(ValidationError, match="must be image"):
        album.cover = stored(content_type="application/pdf")
    facts = stored().model_dump()
    assert Album.model_validate({"cover": facts}).cover == stored()  # a store reading it back
    with pytest.raises(ValidationError, match="its facts cannot be sent by the client"):
        Album.model_validate({"cover": facts}, context=CLIENT_INPUT)
    with pytest.raises(ValidationError, match="only accepted within a request"):
        Album.model_validate({"cover": "some-token"})
    with pytest.raises(ValidationError):
        StoredFile.model_validate({**facts, "id": "../../etc/passwd"})


def test_formats_are_recognised_by_their_first_bytes() -> None:
    assert sniff(PNG_HEAD) == "image/png"
    assert sniff(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert sniff(b"GIF89a...") == "image/gif"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff(b"%PDF-1.7") == "application/pdf"
    assert sniff(b"<svg xmlns=...>") is None
    assert sniff(b"") is None


def test_tokens_are_signed_for_one_purpose_and_expire() -> None:
    tickets, files = TokenSigner("secret", "ticket"), TokenSigner("secret", "file")
    token = tickets.sign({"u": "x"}, ttl=60)
    assert tickets.read(token)["u"] == "x"  # type: ignore[index]
    assert files.read(token) is None  # signed for another purpose
    assert TokenSigner("other", "ticket").read(token) is None
    data, mac = token.split(".")
    assert tickets.read(data[:-2] + "AA." + mac) is None
    assert tickets.read(tickets.sign({"u": "x"}, ttl=-1)) is None  # expired
    assert tickets.read("x" * 5000) is None and tickets.read("no-dot") is None


async def test_the_local_store_stages_appends_promotes_and_forgets(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path)
    upload_id = "b" * 32
    assert await store.append(upload_id, 0, b"hello ") == 6
    with pytest.raises(UploadOffsetMismatch) as wrong:
        await store.append(upload_id, 3, b"again")
    assert wrong.value.size == 6
    assert await store.append(upload_id, 6, b"world") == 11
    assert await store.staged_size(upload_id) == 11
    assert await store.staged_head(upload_id, 5) == b"hello"
    assert len(await store.staged_digest(upload_id)) == 64
    assert await store.promote(upload_id) is True
    assert await store.promote(upload_id) is False  # a second claim finds nothing
    assert b"".join([chunk async for chunk in store.read(upload_id)]) == b"hello world"
    await store.demote(upload_id)
    assert not await store.exists(upload_id) and await store.staged_size(upload_id) == 11
    await store.promote(upload_id)
    await store.delete(upload_id)
    assert not await store.exists(upload_id)
    with pytest.raises(ValueError, match="not a file id"):
        store.kept_path("../../etc/passwd")
    with pytest.raises(UploadOffsetMismatch):
        await store.append("c" * 32, 5, b"no start")  # nothing staged at that offset


async def test_the_local_store_sweeps_old_staged_uploads(tmp_path: Path) -> None:
    store = LocalFileStore(tmp_path)
    await store.append("d" * 32, 0, b"old")
    await store.append("e" * 32, 0, b"new")
    old = store.staged_path("d" * 32)
    past = time.time() - 3600
    import os

    os.utime(old, (past, past))
    assert await store.sweep(600) == 1
    assert await store.staged_size("d" * 32) is None and await store.staged_size("e" * 32) == 3


class FakeFileStore(FileStore):
    """Records what is staged and kept."""

    def __init__(self, staged: set[str] | None = None) -> None:
        self.staged = set(staged or ())
        self.kept: set[str] = set()

    async def append(self, upload_id: str, offset: int, data: bytes) -> int:
        raise NotImplementedError

    async def staged_size(self, upload_id: str) -> int | None:
        return 1 if upload_id in self.staged else None

    async def staged_head(self, upload_id: str, size: int) -> bytes:
        return b""

    async def staged_digest(self, upload_id: str) -> str:
        return "0" * 64

    async def discard(self, upload_id: str) -> None:
        self.staged.discard(upload_id)

    async def promote(self, file_id: str) -> bool:
        if file_id not in self.staged:
            return False
        self.staged.discard(file_id)
        self.kept.add(file_id)
        return True

    async def demote(self, file_id: str) -> None:
        self.kept.discard(file_id)
        self.staged.add(file_id)

    async def read(self, file_id: str) -> AsyncIterator[bytes]:
        yield b""

    async def exists(self, file_id: str) -> bool:
        return file_id in self.kept

    async def delete(self, file_id: str) -> None:
        self.kept.discard(file_id)


def commit_of(store: FakeFileStore, saved: list[Saved]) -> FileCommit | None:
    return FileCommits(lambda: store)(saved)


async def test_the_commit_hook_keeps_new_files_and_removes_replaced_ones() -> None:
    old, new = "1" * 32, "2" * 32
    store = FakeFileStore(staged={new})
    store.kept.add(old)
    album = Album(cover=stored(new))
    participant = commit_of(store, [Saved(album, {"cover": stored(old)}, album.__dict__)])
    assert participant is not None
    await participant.prepare()
    assert store.kept == {old, new}  # the old one goes only after the commit
    await participant.commit()
    assert store.kept == {new} and store.staged == set()
    assert commit_of(store, [Saved(Album(title="x"), {}, {"title": "x"})]) is None  # no file changed


async def test_a_failed_commit_gives_the_upload_back_to_staging() -> None:
    new = "3" * 32
    store = FakeFileStore(staged={new})
    album = Album(cover=stored(new))
    participant = commit_of(store, [Saved(album, {}, album.__dict__)])
    assert participant is not None
    await participant.prepare()
    await participant.rollback()
    assert store.kept == set() and store.staged == {new}


async def test_a_file_that_is_no_fresh_upload_is_refused() -> None:
    store = FakeFileStore()
    store.kept.add("4" * 32)  # another record's file
    album = Album(cover=stored("4" * 32))
    participant = commit_of(store, [Saved(album, {}, album.__dict__)])
    assert participant is not None
    with pytest.raises(ValidationFailed) as refused:
        await participant.prepare()
    assert refused.value.errors == {"cover": "This upload is no longer available; upload the file again"}
    assert store.kept == {"4" * 32}


async def test_a_deleted_record_loses_its_files_after_the_commit() -> None:
    store = FakeFileStore()
    store.kept.add("5" * 32)
    album = Album(cover=stored("5" * 32))
    participant = commit_of(store, [Saved(album, dict(album.__dict__), None)])
    assert participant is not None
    await participant.prepare()
    assert store.kept == {"5" * 32}
    await participant.commit()
    assert store.kept == set()


def test_a_browser_kept_entity_cannot_have_file_fields() -> None:
    from starmodel.core.errors import ConfigurationError
    from starmodel.core.store import StateStore

    with pytest.raises(ConfigurationError, match="file fields \\(photo\\) cannot live in the browser"):

        class Kept(Entity):
            model_config = {"store": StateStore.CLIENT_LOCAL, "namespace": "unit_kept"}
            photo: StoredFile | None = None
