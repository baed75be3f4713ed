"""File fields: ``StoredFile`` (what an entity keeps of a file: its generated id and facts, never
its bytes nor a path), ``FileRules`` (the size and type limits declared on a field or an event
parameter), the ``FileStore`` port that keeps the bytes, and the ``UploadProgress`` fact.

A file reaches an entity in two steps: the browser uploads it (staged under a new id), then an
event or a form sets the field to the upload's token; the unit of work makes the staged file
permanent only when the entity's change commits (see ``app.uploads``)."""

from __future__ import annotations

import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator
from pydantic_core import core_schema

from starmodel.core.errors import StarModelError, ValidationFailed
from starmodel.core.fields import plain_type
from starmodel.core.messages import DomainEvent

if TYPE_CHECKING:
    from starmodel.core.entity import Entity

__all__ = [
    "CLIENT_INPUT",
    "FileRules",
    "FileStore",
    "FileTooLarge",
    "FileTypeRefused",
    "StoredFile",
    "UploadProgress",
    "file_fields",
    "file_rules",
    "parse_size",
    "safe_name",
    "upload_tokens",
]

FILE_ID = re.compile(r"^[0-9a-f]{32}$")
"""Every file id is 32 lowercase hex digits (128 random bits): never a name, never a path."""

CLIENT_INPUT = {"starmodel_client_input": True}
"""The pydantic validation context of values a client sent (event parameters, form values):
there a file field takes only an upload token, never a file's facts written by the client."""

upload_tokens: ContextVar[Callable[[str], StoredFile] | None] = ContextVar("sm_upload_tokens", default=None)
"""How the running request reads an upload token (set by the web adapter for each request);
``None`` outside a request, where tokens are refused."""


class FileTooLarge(ValidationFailed):
    """An upload is larger than its field allows; nothing was kept."""

    status_code = 413


class FileTypeRefused(ValidationFailed):
    """An upload's content type (read from its first bytes where the format is known) is not one
    its field accepts; nothing was kept."""

    status_code = 415


class StoredFile(BaseModel):
    """A file kept for an entity: its id in the file store, and facts checked on upload.

    Attributes:
        id: generated on upload (32 hex digits); the file store keeps the bytes under it.
        name: the name the file had on the uploader's computer, cleaned (``safe_name``): shown
            and offered as the download's name, never used as a path.
        content_type: read from the file's first bytes where the format is known (images,
            PDF), else the type the browser declared.
        size: bytes.
        etag: SHA-256 of the content (hex): the download's ``ETag``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, Field(pattern=FILE_ID.pattern)]
    name: Annotated[str, Field(min_length=1, max_length=255)]
    content_type: Annotated[str, Field(min_length=3, max_length=127)]
    size: Annotated[int, Field(ge=0)]
    etag: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]

    @model_validator(mode="wrap")
    @classmethod
    def _from_token(cls, value: Any, handler: Any, info: ValidationInfo) -> Any:
        """A string is an upload token (read by the request); a client's dict is refused."""
        if isinstance(value, str):
            reader = upload_tokens.get()
            if reader is None:
                raise ValueError("an upload token is only accepted within a request")
            return reader(value)
        context = info.context or {}
        if isinstance(value, dict) and context.get("starmodel_client_input"):
            raise ValueError("upload the file; its facts cannot be sent by the client")
        return handler(value)

    @property
    def is_image(self) -> bool:
        """A raster image browsers show inline (PNG, JPEG, GIF, WebP)."""
        return self.content_type in INLINE_IMAGES


INLINE_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
"""Types served inline (and previewed); every other type is served as an attachment."""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*$", re.I)
_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def parse_size(value: int | str) -> int:
    """``5_000_000``, ``"5MB"``, ``"512 KiB"`` -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(str(value))
    if match is None:
        raise ValueError(f"not a size: {value!r} (write 5_000_000, '5MB' or '512KiB')")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "b").lower()])


@dataclass(frozen=True, init=False)
class FileRules:
    """The limits of a file field or parameter, in its annotation:
    ``photo: Annotated[StoredFile | None, FileRules(max_size="5MB", accept="image/*")] = None``.

    Args:
        max_size: the largest file accepted (bytes, or ``"5MB"``, ``"512KiB"``); larger
            uploads are refused with 413 while they stream, nothing kept.
        accept: content types accepted (``"image/*"``, ``"application/pdf"``; one string or
            several); others are refused with 415. Empty: any type.
    """

    max_size: int
    accept: tuple[str, ...]

    def __init__(self, max_size: int | str = "10MB", accept: str | tuple[str, ...] | list[str] = ()) -> None:
        size = parse_size(max_size)
        if size <= 0:
            raise ValueError("FileRules: max_size must be positive")
        patterns = (accept,) if isinstance(accept, str) else tuple(accept)
        for pattern in patterns:
            if not re.fullmatch(r"[a-z0-9.+-]+/(\*|[a-z0-9.+-]+)", pattern.strip().lower()):
                raise ValueError(f"FileRules: {pattern!r} is not a content type (e.g. 'image/*')")
        object.__setattr__(self, "max_size", size)
        object.__setattr__(self, "accept", tuple(p.strip().lower() for p in patterns))

    def accepts(self, content_type: str) -> bool:
        """Whether ``content_type`` matches one of ``accept`` (any type when it is empty)."""
        kind = content_type.split(";", 1)[0].strip().lower()
        if not self.accept:
            return True
        return any(kind == p or (p.endswith("/*") and kind.startswith(p[:-1])) for p in self.accept)

    @property
    def images_only(self) -> bool:
        """Only images are accepted: every upload's first bytes must show an image format."""
        return bool(self.accept) and all(p.startswith("image/") for p in self.accept)

    def problem(self, file: StoredFile) -> str | None:
        """Why ``file`` breaks these rules, or ``None``."""
        if file.size > self.max_size:
            return f"is larger than {_human(self.max_size)}"
        if not self.accepts(file.content_type):
            return f"must be {', '.join(self.accept)} (not {file.content_type})"
        return None

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        schema = handler(source)

        def check(value: Any) -> Any:
            if isinstance(value, StoredFile):
                problem = self.problem(value)
                if problem is not None:
                    raise ValueError(f"the file {problem}")
            return value

        return core_schema.no_info_after_validator_function(check, schema)


def _human(size: int) -> str:
    for unit, factor in (("GB", 1000**3), ("MB", 1000**2), ("KB", 1000)):
        if size >= factor:
            return f"{size / factor:g} {unit}"
    return f"{size} bytes"


DEFAULT_RULES = FileRules()


def file_rules(info: Any) -> FileRules | None:
    """The rules of a pydantic field whose type is ``StoredFile`` (the defaults when it declares
    none: 10 MB, any type), or ``None`` for other fields."""
    if plain_type(info.annotation) is not StoredFile:
        return None
    for item in info.metadata:
        if isinstance(item, FileRules):
            return item
    return DEFAULT_RULES


@lru_cache(maxsize=1024)
def _file_fields(entity_cls: type[Entity]) -> tuple[tuple[str, FileRules], ...]:
    found = []
    for name, info in entity_cls.model_fields.items():
        rules = file_rules(info)
        if rules is not None:
            found.append((name, rules))
    return tuple(found)


def file_fields(entity_cls: type[Entity]) -> dict[str, FileRules]:
    """The file fields of an entity class and their rules (worked out once per class)."""
    return dict(_file_fields(entity_cls))


_UNSAFE = re.compile(r"[\x00-\x1f\x7f\"*:<>?|]+")


def safe_name(name: str, *, limit: int = 120) -> str:
    """A file name fit to show and to offer as a download's name: its last path part only
    (``../../etc/passwd`` -> ``passwd``, ``C:\\x\\y.txt`` -> ``y.txt``), without control
    or invisible characters (NUL, direction overrides), quotes or leading dots, at most
    ``limit`` characters (the extension kept); ``file`` when nothing is left. It is metadata:
    files are kept under their id."""
    text = unicodedata.normalize("NFC", str(name)).replace("\\", "/")
    text = text.rsplit("/", 1)[-1]
    text = "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co", "Cn"))
    text = _UNSAFE.sub("", text).strip().lstrip(".").strip()
    text = re.sub(r"\s+", " ", text)
    if len(text) > limit:
        stem, dot, ext = text.rpartition(".")
        ext = ext[:16] if dot and stem else ""
        text = text[: limit - len(ext) - 1].rstrip() + "." + ext if ext else text[:limit]
    return text or "file"


class FileStore(ABC):
    """Keeps the bytes of files: staged uploads (appended chunk by chunk, under their upload
    id) and kept files (under their file id, the same id once promoted). Ids are 32 hex
    digits (``FILE_ID``); a store never sees a file's name.

    A unit of work ``promote``s the staged files its entities now hold just before its stores
    commit, ``demote``s them back if the commit fails, and ``delete``s the files its entities
    no longer hold once it has committed.
    """

    @abstractmethod
    async def append(self, upload_id: str, offset: int, data: bytes) -> int:
        """Add ``data`` to the staged upload at ``offset`` (its current size; 0 starts it) and
        return the new size. A wrong offset raises ``UploadOffsetMismatch`` (nothing written)."""

    @abstractmethod
    async def staged_size(self, upload_id: str) -> int | None:
        """The size of a staged upload, ``None`` if there is none."""

    @abstractmethod
    async def staged_head(self, upload_id: str, size: int) -> bytes:
        """The first ``size`` bytes of a staged upload (to recognise its format)."""

    @abstractmethod
    async def staged_digest(self, upload_id: str) -> str:
        """SHA-256 (hex) of a staged upload."""

    @abstractmethod
    async def discard(self, upload_id: str) -> None:
        """Forget a staged upload (nothing happens if there is none)."""

    @abstractmethod
    async def promote(self, file_id: str) -> bool:
        """Make the staged upload ``file_id`` a kept file; ``False`` if no such upload is staged."""

    @abstractmethod
    async def demote(self, file_id: str) -> None:
        """Undo ``promote`` (a commit that failed): the kept file becomes staged again."""

    @abstractmethod
    def read(self, file_id: str) -> AsyncIterator[bytes]:
        """The bytes of a kept file, in chunks (``FileNotFoundError`` if there is none)."""

    @abstractmethod
    async def exists(self, file_id: str) -> bool:
        """Whether a kept file has this id."""

    @abstractmethod
    async def delete(self, file_id: str) -> None:
        """Remove a kept file (nothing happens if there is none)."""

    async def sweep(self, older_than: float) -> int:
        """Forget staged uploads untouched for ``older_than`` seconds; how many went."""
        return 0


class UploadOffsetMismatch(StarModelError):
    """A chunk came for another offset than the staged upload's size (a chunk lost or sent
    twice); the client resumes from ``size``."""

    status_code = 409

    def __init__(self, size: int) -> None:
        super().__init__(f"the upload has {size} bytes; send the chunk at that offset")
        self.size = size


@dataclass(frozen=True)
class UploadProgress(DomainEvent):
    """How far an upload to an entity's file field has come, for every viewer of the entity
    (published on the bus for each chunk, so it reaches tabs connected to any process).

    Attributes:
        namespace, key, scope: the entity (as in ``EntityChanged``).
        field: the file field (or ``event.param``) the upload is for.
        name: the file's (clean) name.
        size: the bytes announced; received: the bytes staged so far.
        state: ``uploading``, ``done`` or ``failed``.
        session_id: the session of a session-scoped entity; owner: of a private record.
    """

    namespace: str
    key: str
    scope: str
    field: str
    name: str
    size: int
    received: int
    state: str = "uploading"
    session_id: str | None = None
    owner: str | None = None

    @property
    def percent(self) -> int:
        return 100 if self.size == 0 else min(100, self.received * 100 // self.size)

    def signal(self) -> dict[str, Any]:
        """What ``$<namespace>._uploads.<field>`` holds in the browser."""
        return {"name": self.name, "size": self.size, "received": self.received,
                "percent": self.percent, "state": self.state}
