"""File uploads with live progress: one shared board with a picture and a document. A file is
sent in chunks as soon as it is picked; every browser showing the page sees the progress bar move
and the new file appear. Its limits (size, types) are declared on the fields: a file too large
or of the wrong type is refused with nothing kept."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fasthtml.common import A, Div, Img, Input, P, Progress, Small, Span
from monsterui.all import H3, Button, ButtonT, Card, TextPresets
from starlette.requests import Request

from demo.activity import SHARED_STORE
from demo.layout import feature, page
from starmodel import Entity, FileRules, StarModel, StoredFile, computed, event, file_url, upload_signal

__all__ = ["FileBoard", "files_card", "install_files"]

Picture = Annotated[StoredFile | None, FileRules(max_size="25MB", accept="image/*")]
Document = Annotated[StoredFile | None, FileRules(max_size="25MB", accept=("application/pdf", "text/plain"))]


class FileBoard(Entity):
    """One board for everybody: a picture and a document, uploaded from any browser."""

    model_config = {"scope": "global", "store": SHARED_STORE, "namespace": "file_board"}
    picture: Picture = None
    title: str = ""
    document: Document = None

    @computed
    def picture_url(self) -> str:
        """Where the picture is downloaded from ("" without one): pages bind to it."""
        return file_url(self, "picture") or ""

    @computed
    def document_url(self) -> str:
        return file_url(self, "document") or ""

    @event
    def titled_picture(self, picture: Picture, title: str = ""):
        """A file parameter: the picture comes with a title, or not at all (a refused call
        keeps no file: the upload is discarded)."""
        if not title.strip():
            raise ValueError("Give the picture a title")
        self.picture, self.title = picture, title.strip()

    @event
    def clear(self):
        """Remove both files (they leave the file store once this commits)."""
        self.picture = None
        self.title = ""
        self.document = None


def _upload_box(field: str, label: str, accept: str) -> Any:
    """A file input that uploads at once, and the progress every viewer sees."""
    progress = upload_signal(FileBoard, field)  # $file_board._uploads.<field>
    return Div(
        H3(label),
        Input(type="file", accept=accept, cls="uk-input", data_sm_upload=f"file_board/{field}",
              data_testid=f"upload-{field}"),
        Progress(value="0", max="100", cls="uk-progress w-full",
                 **{"data-attr:value": f"{progress}?.percent ?? 0"}, data_testid=f"progress-{field}"),
        Small(data_sm_status=True, data_testid=f"status-{field}", cls=TextPresets.muted_sm),
        P(data_text=f"{progress}?.state ? `${{{progress}.name}}: ${{{progress}.percent}}% "
                    f"(${{{progress}.state}})` : ''",
          data_testid=f"live-{field}", cls=TextPresets.muted_sm),
        cls="space-y-2",
    )


def _titled_box() -> Any:
    """An upload handed to an event: staged first, then kept only if the event accepts it."""
    then = ("@post('/file_board/titled_picture?picture=' + encodeURIComponent(evt.detail.token)"
            " + '&title=' + encodeURIComponent($picture_title))")
    return Div(
        H3("A picture with a title (an event's file parameter)"),
        Input(type="text", placeholder="Title", cls="uk-input", data_bind="picture_title",
              data_testid="picture-title"),
        Input(type="file", accept="image/*", cls="uk-input",
              data_sm_upload="file_board/titled_picture.picture",
              data_sm_attach="false", data_testid="upload-titled", **{"data-on:starmodel-upload-done": then}),
        Small(data_sm_status=True, data_testid="status-titled", cls=TextPresets.muted_sm),
        cls="space-y-2", data_signals="{picture_title: ''}",
    )


def files_card(board: FileBoard) -> Any:
    """The board: a live picture and document, two upload boxes, a button to clear it."""
    idle = {"name": "", "size": 0, "received": 0, "percent": 0, "state": ""}
    progress = {"file_board": {"_uploads": {"picture": idle, "document": idle}}}
    return Card(
        Div(board),  # the board's signals: the picture and document change live
        Div(data_signals=json.dumps(progress)),  # what the progress shows before any upload
        Div(
            Img(alt="the board's picture", cls="max-h-48 rounded border", data_testid="picture",
                **{"data-show": "$file_board.picture_url", "data-attr:src": "$file_board.picture_url"}),
            Span("No picture yet", data_show="!$file_board.picture_url", cls=TextPresets.muted_sm),
            P(data_text="$file_board.title", data_testid="picture-title-shown"),
            A("Download the document", data_testid="document",
              **{"data-show": "$file_board.document_url", "data-attr:href": "$file_board.document_url"}),
            cls="space-y-2",
        ),
        _upload_box("picture", "Picture (an image, 25 MB at most)", "image/*"),
        _upload_box("document", "Document (PDF or text, 25 MB at most)", "application/pdf,text/plain"),
        _titled_box(),
        Button("Clear the board", cls=ButtonT.secondary, data_testid="clear-files",
               **{"data-on:click": FileBoard.clear()}),
        cls="space-y-4",
        id="file-board",
    )


def install_files(sm: StarModel, user: Any) -> None:
    """Serve ``/files`` (``user``: the signed-in user of a request, for the header)."""

    @sm.app.route("/files")
    async def files(request: Request) -> Any:
        board = await sm.load(FileBoard)
        return page(
            request, "File uploads",
            P("Pick a file: it goes up in chunks, and every browser showing this page sees the "
              "progress bar move and the file appear. Open the page in another browser to watch.",
              cls="sc-lead"),
            feature("Files on an entity", "A file field declares its limits; the upload is checked "
                    "as it streams and kept only when the change to the entity commits.",
                    files_card(board), FileBoard, install_files),
            user=await user(request),
        )
