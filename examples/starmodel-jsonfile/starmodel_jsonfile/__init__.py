"""A StarModel persistence plugin: entities as JSON files (``<dir>/<namespace>/<key>.json``).

Entry point (``starmodel.persistence``): ``backend(settings)`` returns the factory of
repositories, one per unit of work. Writes wait in the repository; ``prepare`` locks the
directory (against every other writer, in any process) and checks the versions, ``commit``
writes the files and unlocks, ``rollback`` unlocks.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from starmodel import ConcurrencyError, CorruptData, Entity, StoreUnavailable
from starmodel.app.settings import Settings
from starmodel.core.ports import EntityRepository

__all__ = ["JsonFileRepository", "backend", "data_dir"]

E = TypeVar("E", bound=Entity)
DEFAULT_DIR = "starmodel-data"
LOCK_TIMEOUT = 5.0  # seconds a writer waits for the directory lock before giving up (503)


def data_dir(settings: Settings | None = None) -> Path:
    """Where the files go: ``STARMODEL_JSONFILE_DIR``, else ``settings.extra["jsonfile_dir"]``,
    else ``./starmodel-data``."""
    configured = os.environ.get("STARMODEL_JSONFILE_DIR")
    if not configured and settings is not None:
        configured = settings.extra.get("jsonfile_dir")
    return Path(configured or DEFAULT_DIR).resolve()


def backend(settings: Settings) -> Callable[[], EntityRepository]:
    """The entry point: a fresh repository per unit of work, all on one directory."""
    root = data_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    return lambda: JsonFileRepository(root)


@dataclass
class _Write:
    expected: int  # the version the file must still have (0: must not exist)
    document: dict[str, Any] | None  # None: delete


class JsonFileRepository(EntityRepository):
    """One unit of work on a directory of JSON files (writes wait until ``commit``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._writes: dict[tuple[str, str], _Write] = {}
        self._lock: IO[str] | None = None  # the directory lock, held from prepare to the end

    # --- reads --------------------------------------------------------------------------

    async def get(self, entity_cls: type[E], key: str) -> E | None:
        pending = self._writes.get((entity_cls.namespace(), key))
        document = pending.document if pending is not None else self._read(entity_cls.namespace(), key)
        return None if document is None else self._entity(entity_cls, key, document)

    async def list(
        self, entity_cls: type[E], *, offset: int = 0, limit: int = 50, owner: str | None = None
    ) -> list[E]:
        namespace = entity_cls.namespace()
        folder = self.root / namespace
        keys = {p.stem for p in folder.glob("*.json")} if folder.is_dir() else set()
        keys |= {k for (ns, k), w in self._writes.items() if ns == namespace and w.document is not None}
        keys -= {k for (ns, k), w in self._writes.items() if ns == namespace and w.document is None}
        found: list[E] = []
        for key in sorted(keys):
            entity = await self.get(entity_cls, key)
            if entity is None or (owner is not None and entity._sm_owner != owner):
                continue
            found.append(entity)
        return found[offset:offset + max(limit, 0)]

    # --- writes -------------------------------------------------------------------------

    async def save(self, entity: Entity) -> None:
        cls = type(entity)
        if entity._sm_key is None:
            if cls.options().scope != "id":
                raise ValueError(f"{cls.__name__} has no key; load it through a repository first")
            entity._sm_key = uuid.uuid4().hex
        namespace, key = cls.namespace(), entity._sm_key
        _check_key(key)
        current = self._version(namespace, key)
        if current != entity._sm_version:
            raise ConcurrencyError(
                f"{cls.__name__} {key!r} changed meanwhile (version {current}, expected {entity._sm_version})"
            )
        previous = self._writes.get((namespace, key))
        expected = previous.expected if previous is not None else current
        fields = entity.model_dump(mode="json", exclude=set(cls.model_computed_fields) or None)
        document = {"version": current + 1, "owner": entity._sm_owner, "data": fields}
        self._writes[(namespace, key)] = _Write(expected, document)
        entity._sm_version = current + 1

    async def delete(self, entity_cls: type[Entity], key: str) -> bool:
        namespace = entity_cls.namespace()
        current = self._version(namespace, key)
        if current == 0:
            return False
        previous = self._writes.get((namespace, key))
        self._writes[(namespace, key)] = _Write(previous.expected if previous else current, None)
        return True

    # --- transaction hooks --------------------------------------------------------------

    async def begin(self) -> None:
        self._writes.clear()

    async def prepare(self) -> None:
        if not self._writes or self._lock is not None:
            return
        await self._lock_directory()
        try:
            self._check_versions()
        except BaseException:
            self._unlock()
            raise

    async def commit(self) -> None:
        try:
            if not self._writes:
                return
            await self.prepare()  # a no-op when the unit of work prepared already
            for (namespace, key), write in self._writes.items():
                path = self._path(namespace, key)
                if write.document is None:
                    path.unlink(missing_ok=True)
                else:
                    _replace(path, write.document)
        finally:
            self._writes.clear()
            self._unlock()

    async def rollback(self) -> None:
        self._writes.clear()
        self._unlock()

    def _check_versions(self) -> None:
        for (namespace, key), write in self._writes.items():
            stored = self._read(namespace, key)
            if (stored["version"] if stored else 0) != write.expected:
                raise ConcurrencyError(f"{namespace} {key!r} changed meanwhile")

    async def _lock_directory(self) -> None:
        """Take the exclusive lock on ``<dir>/.lock``, waiting without blocking the event loop
        (another unit of work of this process may be the one holding it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / ".lock", "a+")  # noqa: SIM115 - held until commit or rollback
        try:
            pause, waited = 0.0005, 0.0
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if waited >= LOCK_TIMEOUT:
                        raise StoreUnavailable(f"{self.root} stayed locked by another writer") from None
                    await asyncio.sleep(pause)
                    waited += pause
                    pause = min(pause * 2, 0.01)
        except BaseException:
            handle.close()
            raise
        self._lock = handle

    def _unlock(self) -> None:
        handle, self._lock = self._lock, None
        if handle is not None:
            handle.close()  # closing the file releases the lock

    # --- files --------------------------------------------------------------------------

    def _path(self, namespace: str, key: str) -> Path:
        _check_key(key)
        return self.root / namespace / f"{key}.json"

    def _read(self, namespace: str, key: str) -> dict[str, Any] | None:
        path = self._path(namespace, key)
        try:
            document = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise CorruptData(f"{path} is not a readable StarModel record: {exc}") from None
        if not isinstance(document, dict) or not isinstance(document.get("version"), int):
            raise CorruptData(f"{path} is not a StarModel record (version and data expected)")
        return document

    def _version(self, namespace: str, key: str) -> int:
        pending = self._writes.get((namespace, key))
        if pending is not None:
            return pending.document["version"] if pending.document is not None else 0
        stored = self._read(namespace, key)
        return int(stored["version"]) if stored else 0

    def _entity(self, entity_cls: type[E], key: str, document: dict[str, Any]) -> E:
        try:
            entity = entity_cls.model_validate(document.get("data"))
        except ValueError as exc:
            path = self._path(entity_cls.namespace(), key)
            raise CorruptData(f"{path}: not a valid {entity_cls.__name__}: {exc}") from None
        entity._sm_key = key
        entity._sm_version = int(document["version"])
        entity._sm_owner = document.get("owner")
        return entity


def _check_key(key: str) -> None:
    if not key or "/" in key or "\\" in key or key.startswith(".") or "\x00" in key:
        raise ValueError(f"{key!r} cannot be a file name")


def _replace(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as file:
            json.dump(document, file, separators=(",", ":"))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
