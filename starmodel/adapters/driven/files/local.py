"""``LocalFileStore``: files in a directory of the server (``STARMODEL_FILES_DIR``, default
``.starmodel/files``), the default file store. Staged uploads live in ``staging/<id>``, kept
files in ``files/<first two digits>/<id>``: names come only from generated ids, never from a
client. Several processes on one machine may share the directory (a chunk is appended under a
lock, promotion is a rename)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from starmodel.core.files import FILE_ID, FileStore, UploadOffsetMismatch

__all__ = ["LocalFileStore"]

READ_CHUNK = 256 * 1024


def _checked(file_id: str) -> str:
    if not FILE_ID.match(file_id):
        raise ValueError("not a file id")
    return file_id


class LocalFileStore(FileStore):
    """Files in ``root`` (created on first use)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def staged_path(self, upload_id: str) -> Path:
        return self.root / "staging" / _checked(upload_id)

    def kept_path(self, file_id: str) -> Path:
        return self.root / "files" / _checked(file_id)[:2] / file_id

    async def append(self, upload_id: str, offset: int, data: bytes) -> int:
        return await asyncio.to_thread(self._append, self.staged_path(upload_id), offset, data)

    @staticmethod
    def _append(path: Path, offset: int, data: bytes) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT if offset == 0 else os.O_RDWR
        try:
            fd = os.open(path, flags, 0o600)
        except FileNotFoundError:
            raise UploadOffsetMismatch(0) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size != offset:
                raise UploadOffsetMismatch(size)
            os.lseek(fd, offset, os.SEEK_SET)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            return offset + len(data)
        finally:
            os.close(fd)  # releases the lock

    async def staged_size(self, upload_id: str) -> int | None:
        try:
            return self.staged_path(upload_id).stat().st_size
        except FileNotFoundError:
            return None

    async def staged_head(self, upload_id: str, size: int) -> bytes:
        def head() -> bytes:
            with self.staged_path(upload_id).open("rb") as file:
                return file.read(size)

        return await asyncio.to_thread(head)

    async def staged_digest(self, upload_id: str) -> str:
        def digest() -> str:
            sha = hashlib.sha256()
            with self.staged_path(upload_id).open("rb") as file:
                while chunk := file.read(1024 * 1024):
                    sha.update(chunk)
            return sha.hexdigest()

        return await asyncio.to_thread(digest)

    async def discard(self, upload_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.staged_path(upload_id).unlink()

    async def promote(self, file_id: str) -> bool:
        staged, kept = self.staged_path(file_id), self.kept_path(file_id)
        kept.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staged, kept)  # atomic: a second claim of the same upload finds nothing
        except FileNotFoundError:
            return False
        return True

    async def demote(self, file_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.rename(self.kept_path(file_id), self.staged_path(file_id))

    async def read(self, file_id: str) -> AsyncIterator[bytes]:
        file = await asyncio.to_thread(self.kept_path(file_id).open, "rb")
        try:
            while chunk := await asyncio.to_thread(file.read, READ_CHUNK):
                yield chunk
        finally:
            file.close()

    async def exists(self, file_id: str) -> bool:
        return self.kept_path(file_id).is_file()

    async def delete(self, file_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.kept_path(file_id).unlink()

    async def sweep(self, older_than: float) -> int:
        folder = self.root / "staging"
        if not folder.is_dir():
            return 0
        limit, gone = time.time() - older_than, 0
        for path in folder.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < limit:
                    path.unlink()
                    gone += 1
        return gone
