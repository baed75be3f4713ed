"""Uploads to file fields, as an application service: an upload is announced (its target, size
and type checked against the field's rules and the caller's rights), streamed in chunks into the
file store (sizes counted as the bytes arrive, never taken from the client), recognised by its
first bytes when it ends, and handed back as a signed token that an event or a form sets the
field with (``StoredFile`` reads it). Progress goes on the bus to every viewer of the entity."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starmodel.app.crud import CrudService
from starmodel.app.file_commits import presented_uploads
from starmodel.app.upload_tokens import TokenSigner
from starmodel.core.context import CallContext
from starmodel.core.entity import Entity
from starmodel.core.errors import EntityNotFound, PermissionDenied, ValidationFailed
from starmodel.core.files import (
    FileRules,
    FileStore,
    FileTooLarge,
    FileTypeRefused,
    StoredFile,
    UploadProgress,
    file_fields,
    file_rules,
    safe_name,
)
from starmodel.core.ports import EventBus

__all__ = ["CHUNK_SIZE", "MAX_CHUNK", "UploadTarget", "Uploads", "sniff"]

log = logging.getLogger("starmodel.files")

CHUNK_SIZE = 512 * 1024
"""The chunk a browser sends per request (below common proxy body limits such as nginx's 1 MB)."""
MAX_CHUNK = 4 * 1024 * 1024
"""The largest chunk accepted in one request."""
TICKET_TTL = 3600.0
TOKEN_TTL = 3600.0
_TYPE = re.compile(r"^[a-z0-9][a-z0-9.+-]{0,62}/[a-z0-9][a-z0-9.+-]{0,62}$")

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)
SNIFFED = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"})
"""Types recognised by their first bytes: a file claiming one of them must start like one."""


def sniff(head: bytes) -> str | None:
    """The content type a file's first bytes show, for the formats StarModel recognises."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


@dataclass(frozen=True)
class UploadTarget:
    """Where an upload goes: a file field of an entity, or a file parameter of one of its
    events (``event.param``), with its rules."""

    entity_cls: type[Entity]
    name: str
    rules: FileRules
    is_field: bool

    @classmethod
    def find(cls, entity_cls: type[Entity], name: str) -> UploadTarget:
        fields = file_fields(entity_cls)
        if name in fields and name not in entity_cls.__starmodel_server_only__:
            return cls(entity_cls, name, fields[name], True)
        event, _, param = name.partition(".")
        spec = entity_cls.events().get(event)
        if spec is not None and param in spec.params:
            info = spec.params_model.model_fields[param]
            rules = file_rules(info)
            if rules is not None:
                return cls(entity_cls, name, rules, False)
        raise EntityNotFound(f"{entity_cls.__name__} has no file field or parameter {name!r}")


@dataclass(frozen=True)
class _Ticket:
    upload_id: str
    namespace: str
    key: str
    target: str
    session: str
    name: str
    size: int
    content_type: str
    attach: bool
    owner: str | None
    scope: str


class Uploads:
    """Announce, stream and finish uploads; read their tokens; publish their progress.

    Args:
        store: the file store (called once, on first use).
        bus: where progress is published.
        crud: reads the target record (its read policy) and attaches a finished upload.
        secret: the app's secret, which signs tickets and tokens.
    """

    def __init__(self, store: Callable[[], FileStore], bus: EventBus, crud: CrudService, secret: str) -> None:
        self._store_factory = store
        self._store: FileStore | None = None
        self.bus = bus
        self.crud = crud
        self.tickets = TokenSigner(secret, "ticket")
        self.tokens = TokenSigner(secret, "file")
        self.chunk_size = CHUNK_SIZE

    @property
    def store(self) -> FileStore:
        if self._store is None:
            self._store = self._store_factory()
        return self._store

    # --- announcing -------------------------------------------------------------------

    async def begin(
        self,
        target: UploadTarget,
        key: str | None,
        ctx: CallContext,
        *,
        name: Any,
        size: Any,
        content_type: Any,
        attach: bool = True,
    ) -> dict[str, Any]:
        """Check an announced upload and give its ticket: 413 if it is larger than the rules
        allow, 415 if its declared type is refused, 403/404 if the caller may not change the
        entity. Nothing is stored yet."""
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            wrong = "the file's size must be a whole number of bytes"
            raise ValidationFailed({target.name: wrong}, "Upload refused")
        if size > target.rules.max_size:
            too_large = target.rules.problem(_facts(size=size))
            raise FileTooLarge({target.name: f"The file {too_large}"}, "The file is too large")
        declared = _clean_type(content_type)
        if target.rules.accept and not target.rules.accepts(declared):
            raise FileTypeRefused(
                {target.name: f"The file must be {', '.join(target.rules.accept)} (not {declared})"},
                "This type of file is not accepted",
            )
        entity_cls = target.entity_cls
        owner: str | None = None
        scope = entity_cls.options().scope
        if scope == "session":
            key = ctx.session_id
        elif scope == "global":
            key = "global"
        record: Entity | None = None
        if key:
            record = await self.crud.get(entity_cls, key, ctx)  # the read policy, privacy, 404
            owner = record._sm_owner if entity_cls.options().private else None
        action = ("update" if key else "create") if target.is_field else "events"
        ctx.entity = record
        if not entity_cls.permits(action, ctx):
            raise PermissionDenied(f"You may not change this {entity_cls.__name__}")
        upload_id = secrets.token_hex(16)
        ticket = self.tickets.sign({
            "u": upload_id, "n": entity_cls.namespace(), "k": key or "", "t": target.name,
            "s": ctx.session_id, "name": safe_name(str(name or "")), "size": size, "type": declared,
            "a": bool(attach and target.is_field and key), "o": owner, "sc": scope,
        }, ttl=TICKET_TTL)
        await self.store.sweep(24 * 3600)
        return {"ticket": ticket, "chunk": self.chunk_size, "id": upload_id}

    def read_ticket(self, text: str, ctx: CallContext) -> _Ticket:
        value = self.tickets.read(text)
        if value is None or value.get("s") != ctx.session_id:
            raise EntityNotFound("This upload has expired or is not yours; start it again")
        return _Ticket(value["u"], value["n"], value["k"], value["t"], value["s"], value["name"],
                       value["size"], value["type"], value["a"], value.get("o"), value["sc"])

    # --- streaming --------------------------------------------------------------------

    async def receive(
        self,
        ticket: _Ticket,
        target: UploadTarget,
        offset: int,
        body: AsyncIterator[bytes],
        ctx: CallContext,
    ) -> dict[str, Any]:
        """Append one chunk at ``offset``; the bytes are counted as they arrive and the upload
        is refused (413, everything staged discarded) once it goes past its announced size or
        the field's limit. The last chunk finishes it: see ``finish``."""
        if not 0 <= offset <= ticket.size:
            raise ValidationFailed({"offset": "out of the file"}, "Upload refused")
        limit = min(ticket.size, target.rules.max_size)
        data = bytearray()
        async for part in body:
            data += part
            if offset + len(data) > limit or len(data) > MAX_CHUNK:
                await self.fail(ticket)
                problem = target.rules.problem(_facts(size=offset + len(data)))
                message = f"The file {problem}" if problem else "The file is larger than announced"
                raise FileTooLarge({target.name: message}, "The file is too large")
        received = await self.store.append(ticket.upload_id, offset, bytes(data))
        if received < ticket.size:
            await self._progress(ticket, received, "uploading")
            return {"received": received}
        return await self.finish(ticket, target, ctx)

    async def finish(self, ticket: _Ticket, target: UploadTarget, ctx: CallContext) -> dict[str, Any]:
        """Recognise the complete upload, check it against the rules (415 when its bytes show
        a refused type, or not the type it claimed), and give its token; an upload to a
        record's field is attached to it at once (committed with the entity)."""
        presented = presented_uploads.get()
        if presented is not None and ticket.attach:
            presented.add(ticket.upload_id)  # discarded when the request ends, unless committed
        head = await self.store.staged_head(ticket.upload_id, 64)
        try:
            kind = _effective_type(head, ticket.content_type, target)
        except FileTypeRefused:
            await self.fail(ticket)
            raise
        stored = StoredFile(
            id=ticket.upload_id, name=ticket.name, content_type=kind, size=ticket.size,
            etag=await self.store.staged_digest(ticket.upload_id),
        )
        token = self.tokens.sign(
            {"file": stored.model_dump(), "s": ticket.session, "t": f"{ticket.namespace}/{ticket.target}"},
            ttl=TOKEN_TTL,
        )
        if ticket.attach:
            try:
                await self.crud.update(target.entity_cls, ticket.key, {target.name: stored}, ctx)
            except Exception:
                await self.fail(ticket)
                raise
        await self._progress(ticket, ticket.size, "done")
        return {"received": ticket.size, "token": token, "attached": ticket.attach,
                "file": stored.model_dump(include={"name", "content_type", "size"})}

    async def fail(self, ticket: _Ticket) -> None:
        """Forget what was staged for an upload that was refused, and tell the viewers."""
        await self.store.discard(ticket.upload_id)
        await self._progress(ticket, 0, "failed")

    async def _progress(self, ticket: _Ticket, received: int, state: str) -> None:
        if not ticket.key:
            return  # a record not created yet: nobody else shows it
        scope = ticket.scope
        await self.bus.publish(UploadProgress(
            namespace=ticket.namespace, key=ticket.key, scope=scope, field=ticket.target,
            name=ticket.name, size=ticket.size, received=received, state=state,
            session_id=ticket.session if scope == "session" else None, owner=ticket.owner,
        ))

    # --- tokens -----------------------------------------------------------------------

    def token_reader(self, session: Callable[[], str | None]) -> Callable[[str], StoredFile]:
        """What ``StoredFile`` uses to read a token in one request (``session``: the request's
        session id): the file it names, once this app signed it for that session."""

        def read(token: str) -> StoredFile:
            value = self.tokens.read(token)
            if value is None or value.get("s") != session():
                raise ValueError("this upload is not valid (any more); upload the file again")
            stored = StoredFile.model_validate(value["file"])
            presented = presented_uploads.get()
            if presented is not None:
                presented.add(stored.id)
            return stored

        return read

    async def discard_unclaimed(self, presented: set[str]) -> None:
        """At the end of a request: the uploads it presented that no commit made permanent."""
        for upload_id in presented:
            try:
                await self.store.discard(upload_id)
            except Exception:  # the answer is sent; a staged upload left over is swept later
                log.exception("a staged upload (%s) could not be discarded", upload_id)


def _facts(*, size: int) -> StoredFile:
    return StoredFile.model_construct(id="0" * 32, name="file", content_type="application/octet-stream",
                                      size=size, etag="0" * 64)


def _clean_type(value: Any) -> str:
    kind = str(value or "").split(";", 1)[0].strip().lower()
    return kind if _TYPE.match(kind) else "application/octet-stream"


def _effective_type(head: bytes, declared: str, target: UploadTarget) -> str:
    """The type recorded for an upload: what its bytes show where the format is known; the
    declared type only for formats that cannot be recognised, and never one that could."""
    found = sniff(head)
    rules = target.rules
    if found is None and (declared in SNIFFED or rules.images_only):
        what = declared if declared in SNIFFED else "an image"
        raise FileTypeRefused({target.name: f"The file is not {what}"}, "This type of file is not accepted")
    kind = found or declared
    if not rules.accepts(kind):
        raise FileTypeRefused(
            {target.name: f"The file must be {', '.join(rules.accept)} (not {kind})"},
            "This type of file is not accepted",
        )
    return kind

