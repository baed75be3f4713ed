"""The app's page assets on the web side: the ``<head>`` they need, the notice shown when they
are missing, and serving them under content-hashed names that browsers keep for a year."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

from starmodel.adapters.driving.web.asset_bundle import PageAssets
from starmodel.adapters.driving.web.assets import missing_assets_notice, page_headers
from starmodel.adapters.driving.web.security import with_nonces
from starmodel.app.settings import Settings

__all__ = ["IMMUTABLE", "ServedAssets"]

# A content-hashed name never changes content: browsers and proxies may keep it for good.
IMMUTABLE = "public, max-age=31536000, immutable"


class ServedAssets:
    """What the app's pages load, found on disk (never fetched here: ``starmodel run`` and
    ``starmodel assets`` fetch); ``refresh`` looks again after a fetch."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.found: PageAssets | None = None
        self.headers: list[Any] = []
        self._served: dict[str, Path] = {}
        self.refresh()

    @property
    def local(self) -> bool:
        return self.settings.assets == "local"

    @property
    def missing(self) -> tuple[str, ...]:
        """Bundle files a local-assets page needs and cannot have."""
        return self.found.missing if self.found is not None else ()

    def refresh(self) -> None:
        """Find the files again (e.g. once they are fetched) and rebuild the headers; the list
        keeps its identity, so an app that holds it sees the change.

        The notice, when files are missing, comes last in ``<head>``: the browser's parser
        starts the body there, so it shows at the top of every page, in the page's flow.
        """
        if self.local:
            self.found = PageAssets.resolve(self.settings.assets_dir, self.settings.cache_dir)
            self._served = self.found.served()
        notice = [missing_assets_notice(self.missing)] if self.missing else []
        headers = page_headers(self.settings.assets, self.settings.theme, self.found)
        self.headers[:] = with_nonces([*headers, *notice])

    async def handle(self, request: Request) -> Response:
        """``GET /_starmodel/assets/<hashed name>``: the file, gzipped when the browser
        takes it and a ``.gz`` copy lies beside it; any other name is a 404."""
        path = self._served.get(request.path_params["name"])
        if path is None or not path.is_file():
            return PlainTextResponse("Not found", status_code=404)
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if media_type in ("text/javascript", "application/javascript", "text/css"):
            media_type += "; charset=utf-8"
        headers = {"Cache-Control": IMMUTABLE, "Vary": "Accept-Encoding"}
        packed = path.with_name(path.name + ".gz")
        if "gzip" in request.headers.get("accept-encoding", "") and _fresh_copy(packed, path):
            return FileResponse(packed, media_type=media_type,
                                headers={**headers, "Content-Encoding": "gzip"})
        return FileResponse(path, media_type=media_type, headers=headers)


def _fresh_copy(packed: Path, source: Path) -> bool:
    try:
        return packed.stat().st_mtime >= source.stat().st_mtime
    except OSError:
        return False
