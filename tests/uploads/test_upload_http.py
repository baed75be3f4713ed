"""File fields over HTTP: uploads in chunks with their limits (413, 415), names that never
become paths, files committed with their entity (or not at all), downloads behind the read
policy with the right headers, and tokens that cannot be forged or used twice."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
from starlette.responses import JSONResponse
from sqlmodel import Field
from tests.uploads.upload_kit import client, nothing_stored, png, stored_files, upload

from starmodel import Entity, StarModel, event
from starmodel.core.files import FileRules, StoredFile

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
    document: Annotated[StoredFile | None, FileRules(max_size="1MB", accept=("application/pdf", "text/plain"))] = None

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

