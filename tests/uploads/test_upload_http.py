"""File fields over HTTP: uploads in chunks with their limits (413, 415), names that never
become paths, files committed with their entity (or not at all), downloads behind the read
policy with the right headers, and tokens that cannot be forged or used twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pytest
from fasthtml.common import to_xml
from sqlmodel import Field
from starlette.responses import JSONResponse

from starmodel import Entity, StarModel, event
from starmodel.core.files import FileRules, StoredFile
from tests.uploads.upload_kit import client, nothing_stored, png, stored_files, upload

ImageFile = Annotated[StoredFile | None, FileRules(max_size="200KB", accept="image/*")]


def may_read(ctx: Any) -> bool:
    return ctx.user != "mallory"


class Profile(Entity):
    model_config = {"namespace": "up_profile"}
    nickname: str = ""
    avatar: ImageFile = None

    @event
    def set_avatar(self, avatar: Annotated[StoredFile, FileRules(max_size="200KB", accept="image/*")]):
        self.avatar = avatar

    @event
    def set_then_fail(self, avatar: StoredFile):
        self.avatar = avatar
        raise ValueError("refused after the file was set")

    @event
    def refuse_early(self, avatar: StoredFile):
        raise ValueError("refused before the file was used")

    @event
    def clear(self):
        self.avatar = None


class Paper(Entity, table=True):
    model_config = {"namespace": "up_paper", "policy": {"read": may_read, "*": True}}
    id: int | None = Field(default=None, primary_key=True)
    title: str = ""
    document: Annotated[
        StoredFile | None, FileRules(max_size="1MB", accept=("application/pdf", "text/plain"))
    ] = None

    @event
    def create(cls, title: str):
        cls.records.add(Paper(title=title))


class HeaderUser:
    """ASGI middleware: the caller named by ``X-Test-User`` is the signed-in user."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"x-test-user":
                    scope["user"] = value.decode()
        await self.app(scope, receive, send)


@pytest.fixture
async def sm(tmp_path: Path):
    sm = StarModel(entities=[Profile, Paper], secret_key="test", files_dir=str(tmp_path / "files"),
                   database_url=f"sqlite:///{tmp_path}/up.db")
    sm.app.add_middleware(HeaderUser)

    @sm.app.route("/me")
    async def me(request):
        return JSONResponse((await sm.load(Profile, request)).model_dump(mode="json"))
    async with sm.app.router.lifespan_context(sm.app):
        yield sm


def files_root(sm: StarModel) -> Path:
    return Path(sm.settings.files_dir or "")


async def my_profile(http: Any) -> Profile:
    return Profile.model_validate((await http.get("/me")).json())


async def new_paper(sm: StarModel, http: Any, title: str = "spec") -> str:
    answer = await http.post("/up_paper/create", params={"title": title})
    assert answer.status_code == 200, answer.text
    papers = await sm.reads.list(Paper, limit=100)
    return str(next(p.id for p in papers if p.title == title))


async def test_an_upload_in_chunks_is_attached_and_served_back(sm):
    image = png(extra=150_000)
    async with client(sm) as http:
        done = await upload(http, "up_profile/avatar", image, chunk=40_000)
        assert done.status_code == 200, done.text
        assert done.json()["attached"] is True and done.json()["file"]["size"] == len(image)
        profile = await my_profile(http)
        assert isinstance(profile.avatar, StoredFile)
        assert profile.avatar.content_type == "image/png" and profile.avatar.name == "picture.png"
        kept = stored_files(files_root(sm))
        assert kept == {"files": [profile.avatar.id], "staging": []}  # stored under its id

        url = f"/_starmodel/files/up_profile/-/avatar/{profile.avatar.id}"
        got = await http.get(url)
        assert got.status_code == 200 and got.content == image
        assert got.headers["content-type"] == "image/png"
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["content-disposition"] == 'inline; filename="picture.png"'
        assert got.headers["etag"] == f'"{profile.avatar.etag}"'
        assert "sandbox" in got.headers["content-security-policy"]
        again = await http.get(url, headers={"If-None-Match": got.headers["etag"]})
        assert again.status_code == 304 and again.content == b""



async def test_a_file_announced_too_large_is_refused_with_nothing_written(sm):
    async with client(sm) as http:
        refused = await upload(http, "up_profile/avatar", png(), declared_size=300_000)
        assert refused.status_code == 413
        assert refused.json()["errors"] == {"avatar": "The file is larger than 200 KB"}
    assert nothing_stored(files_root(sm))


async def test_a_file_larger_than_announced_is_refused_while_it_streams(sm):
    image = png(extra=250_000)
    async with client(sm) as http:
        refused = await upload(http, "up_profile/avatar", image, declared_size=1000, chunk=len(image))
        assert refused.status_code == 413
        assert (await my_profile(http)).avatar is None
    assert nothing_stored(files_root(sm))  # the staged part is gone too


async def test_a_chunk_larger_than_the_field_allows_is_refused_midway(sm):
    image = png(extra=250_000)
    async with client(sm) as http:
        begun = await http.post("/_starmodel/uploads", json={
            "target": "up_profile/avatar", "name": "x.png", "type": "image/png", "size": 100_000})
        ticket = begun.json()["ticket"]
        first = await http.put(f"/_starmodel/uploads/{ticket}?offset=0", content=image[:60_000])
        assert first.status_code == 200 and first.json() == {"received": 60_000}
        refused = await http.put(f"/_starmodel/uploads/{ticket}?offset=60000", content=image[60_000:])
        assert refused.status_code == 413
    assert nothing_stored(files_root(sm))


async def test_a_file_whose_bytes_are_not_the_declared_image_is_refused_415(sm):
    async with client(sm) as http:
        refused = await upload(http, "up_profile/avatar", b"<script>alert(1)</script>" * 10)
        assert refused.status_code == 415
        assert refused.json()["errors"] == {"avatar": "The file is not image/png"}
        svg = await upload(http, "up_profile/avatar", b"<svg xmlns='http://www.w3.org/2000/svg'/>",
                           name="x.svg", content_type="image/svg+xml")
        assert svg.status_code == 415  # an image field takes images it can recognise
        text = await upload(http, "up_profile/avatar", b"hello", name="a.txt", content_type="text/plain")
        assert text.status_code == 415 and "image/*" in text.json()["errors"]["avatar"]
    assert nothing_stored(files_root(sm))


@pytest.mark.parametrize("name, shown", [
    ("../../etc/passwd", "passwd"),
    ("/etc/shadow", "shadow"),
    ("..\\..\\windows\\win.ini", "win.ini"),
    ("evil\x00.png", "evil.png"),
    ("....", "file"),
    ("\u202egnp.exe", "gnp.exe"),
    ("r\u00e9sum\u00e9 (final).png", "r\u00e9sum\u00e9 (final).png"),
])
async def test_names_never_become_paths(sm, name, shown):
    async with client(sm) as http:
        done = await upload(http, "up_profile/avatar", png(), name=name)
        assert done.status_code == 200, done.text
        profile = await my_profile(http)
        assert profile.avatar is not None and profile.avatar.name == shown
        got = await http.get(f"/_starmodel/files/up_profile/-/avatar/{profile.avatar.id}")
        disposition = got.headers["content-disposition"]
        assert "/" not in disposition and "\\" not in disposition
    root = files_root(sm)
    every = [p for p in root.rglob("*") if p.is_file()]
    assert [p.name for p in every] == [profile.avatar.id]
    assert all(p.resolve().is_relative_to(root.resolve()) for p in every)
    assert not (Path("/etc") / "passwd").read_bytes().startswith(b"\x89PNG")


async def test_a_failing_event_leaves_no_file(sm):
    async with client(sm) as http:
        staged = await upload(http, "up_profile/avatar", png(), attach=False)
        token = staged.json()["token"]
        assert staged.json()["attached"] is False
        failed = await http.post("/up_profile/set_then_fail", params={"avatar": token})
        assert failed.status_code == 422
        assert (await my_profile(http)).avatar is None
        assert nothing_stored(files_root(sm))

        staged = await upload(http, "up_profile/avatar", png(), attach=False)
        failed = await http.post("/up_profile/refuse_early", params={"avatar": staged.json()["token"]})
        assert failed.status_code == 422
    assert nothing_stored(files_root(sm))


async def test_an_event_sets_the_file_from_its_token_once(sm):
    async with client(sm) as http:
        staged = await upload(http, "up_profile/avatar", png(), attach=False)
        token = staged.json()["token"]
        assert stored_files(files_root(sm))["files"] == []  # staged only
        set_it = await http.post("/up_profile/set_avatar", params={"avatar": token})
        assert set_it.status_code == 200, set_it.text
        avatar = (await my_profile(http)).avatar
        assert avatar is not None and stored_files(files_root(sm))["files"] == [avatar.id]
        again = await http.post("/up_profile/set_avatar", params={"avatar": token})
        assert again.status_code in (200, 204)  # the same file: nothing changes


async def test_a_token_of_another_session_is_refused(sm):
    async with client(sm) as alice, client(sm) as mallory:
        staged = await upload(alice, "up_profile/avatar", png(), attach=False)
        stolen = await mallory.post("/up_profile/set_avatar", params={"avatar": staged.json()["token"]})
        assert stolen.status_code == 422
        assert (await my_profile(mallory)).avatar is None


async def test_a_client_cannot_write_a_files_facts(sm):
    async with client(sm) as http:
        await upload(http, "up_profile/avatar", png())
        kept = (await my_profile(http)).avatar
        assert kept is not None
        forged = kept.model_dump() | {"size": 1}
        refused = await http.post("/up_profile/set_avatar", params={"avatar": json.dumps(forged)})
        assert refused.status_code == 422
        assert "upload the file" in refused.text
        assert (await my_profile(http)).avatar == kept


async def test_a_replaced_file_is_removed_after_the_commit(sm):
    async with client(sm) as http:
        await upload(http, "up_profile/avatar", png(width=3))
        first = (await my_profile(http)).avatar
        await upload(http, "up_profile/avatar", png(width=4))
        second = (await my_profile(http)).avatar
        assert first is not None and second is not None and first.id != second.id
        assert stored_files(files_root(sm))["files"] == [second.id]
        gone = await http.get(f"/_starmodel/files/up_profile/-/avatar/{first.id}")
        assert gone.status_code == 404
        await http.post("/up_profile/clear")
    assert nothing_stored(files_root(sm))


async def test_a_record_file_in_sql_is_served_only_to_readers(sm):
    async with client(sm, **{"X-Test-User": "alice"}) as alice, \
            client(sm, **{"X-Test-User": "mallory"}) as mallory:
        key = await new_paper(sm, alice)
        done = await upload(alice, "up_paper/document", b"%PDF-1.4 a small paper", name="spec.pdf",
                            content_type="application/pdf", key=key)
        assert done.status_code == 200, done.text
        paper = await sm.find(Paper, key)
        assert paper is not None and isinstance(paper.document, StoredFile)
        assert paper.document.content_type == "application/pdf"
        url = f"/_starmodel/files/up_paper/{key}/document/{paper.document.id}"
        got = await alice.get(url)
        assert got.status_code == 200 and got.content == b"%PDF-1.4 a small paper"
        assert got.headers["content-disposition"] == 'attachment; filename="spec.pdf"'
        assert (await mallory.get(url)).status_code == 403
        assert (await alice.get(url.replace(paper.document.id, "0" * 32))).status_code == 404
        missing = f"/_starmodel/files/up_paper/999/document/{paper.document.id}"
        assert (await alice.get(missing)).status_code == 404
        refused = await upload(mallory, "up_paper/document", b"%PDF-1.4 x", name="x.pdf",
                               content_type="application/pdf", key=key)
        assert refused.status_code == 403  # who may not read it may not upload to it either


async def test_uploads_need_the_same_site(sm):
    async with client(sm) as http:
        refused = await http.post("/_starmodel/uploads", json={"target": "up_profile/avatar"},
                                  headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
        assert refused.status_code == 403
        unknown = await http.post("/_starmodel/uploads", json={"target": "up_profile/nickname", "size": 1})
        assert unknown.status_code == 404
        bad = await http.put("/_starmodel/uploads/forged.ticket?offset=0", content=b"x")
        assert bad.status_code == 404
        nonsense = await http.post("/_starmodel/uploads", content=b"[1, 2")
        assert nonsense.status_code == 422


async def test_every_viewer_of_the_record_sees_the_progress(sm):
    from starmodel.testing import parse_sse

    image = b"%PDF-1.4 " + b"x" * 200_000
    async with client(sm) as alice:
        key = await new_paper(sm, alice)
        stream, body = sm.web.open_live_stream("viewer-session", "viewer-tab", watch=[Paper])
        await body.__anext__()  # the stream's first chunk (the tab's state): now it listens
        try:
            done = await upload(alice, "up_paper/document", image, name="big.pdf",
                                content_type="application/pdf", key=key, chunk=50_000)
            assert done.status_code == 200
            seen = []
            for text in [raw.decode() for raw in stream.pending]:
                for item in parse_sse(text):
                    uploads = item.signals.get("up_paper", {}).get(key, {}).get("_uploads")
                    if uploads:
                        seen.append(uploads["document"])
        finally:
            await body.aclose()
    assert [s["percent"] for s in seen] == [24, 49, 74, 99, 100]
    assert seen[-1] == {"name": "big.pdf", "size": len(image), "received": len(image),
                        "percent": 100, "state": "done"}


async def test_generated_forms_upload_first_and_keep_the_file_when_saved(sm):
    import json

    views = sm.views(Paper)
    form = to_xml(views.form())
    assert 'type="file"' in form and 'data-sm-upload="up_paper/document"' in form
    assert 'accept="application/pdf,text/plain"' in form
    async with client(sm) as http:
        staged = await upload(http, "up_paper/document", b"plain words", name="notes.txt",
                              content_type="text/plain", attach=False)
        token = staged.json()["token"]
        body = {"smform": {"up_paper_new": {"title": "with a file", "document": token}}}
        saved = await http.post("/_starmodel/ui/up_paper/create", content=json.dumps(body))
        assert saved.status_code == 200, saved.text
        papers = [p for p in await sm.reads.list(Paper, limit=100) if p.title == "with a file"]
        assert papers and papers[0].document is not None and papers[0].document.name == "notes.txt"
        assert stored_files(files_root(sm))["files"] == [papers[0].document.id]
        edit = {"smform": {"up_paper_edit": {"title": "renamed", "document": ""}}}
        key = papers[0].id
        kept = await http.post(f"/_starmodel/ui/up_paper/update?key={key}", content=json.dumps(edit))
        assert kept.status_code == 200, kept.text
        assert (await sm.find(Paper, key)).document == papers[0].document  # an empty input keeps it
        cell = to_xml(views.cell(papers[0], views.field("document")))
        assert f"/_starmodel/files/up_paper/{key}/document/{papers[0].document.id}" in cell


async def test_a_multipart_upload_in_one_request(sm):
    async with client(sm) as http:
        image = png(extra=1000)
        done = await http.post("/_starmodel/uploads/form", params={"target": "up_profile/avatar"},
                               files={"file": ("../me.png", image, "image/png")})
        assert done.status_code == 200, done.text
        avatar = (await my_profile(http)).avatar
        assert avatar is not None and avatar.name == "me.png" and avatar.size == len(image)
        too_big = await http.post("/_starmodel/uploads/form", params={"target": "up_profile/avatar"},
                                  files={"file": ("big.png", png(extra=400_000), "image/png")})
        assert too_big.status_code == 413
        assert too_big.json()["errors"] == {"avatar": "The file is larger than 200 KB"}
        lying = await http.post("/_starmodel/uploads/form", params={"target": "up_profile/avatar"},
                                files={"file": ("x.png", b"GIF89a not a png", "image/png")})
        assert lying.status_code == 200 and (await my_profile(http)).avatar.content_type == "image/gif"
        no_file = await http.post("/_starmodel/uploads/form", params={"target": "up_profile/avatar"},
                                  data={"other": "x"})
        assert no_file.status_code == 422
        garbage = await http.post("/_starmodel/uploads/form", params={"target": "up_profile/avatar"},
                                  content=b"--x\r\nnot multipart",
                                  headers={"Content-Type": "multipart/form-data"})
        assert garbage.status_code == 422
    assert stored_files(files_root(sm))["staging"] == []
