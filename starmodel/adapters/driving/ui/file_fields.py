"""How generated screens show file fields: a file input that uploads as soon as a file is picked
(the form then sends the upload's token, so the file is kept only when the form is saved), a
progress line, and the current file as an image preview or a download link."""

from __future__ import annotations

from typing import Any

from fasthtml.common import A, Div, Img, Input, Small, Span

from starmodel.adapters.driving.web.uploads import file_url
from starmodel.core.entity import Entity
from starmodel.core.files import StoredFile, file_fields

__all__ = ["file_control", "file_target_attrs", "file_value"]


def file_target_attrs(entity_cls: type[Entity], name: str) -> dict[str, str]:
    """The input attributes of a file field: where its uploads go, which types it takes."""
    rules = file_fields(entity_cls).get(name)
    attrs = {"data-sm-upload": f"{entity_cls.namespace()}/{name}"}
    if rules is not None and rules.accept:
        attrs["accept"] = ",".join(rules.accept)
    return attrs


def file_control(attrs: dict[str, str], signal: str, input_id: str, name: str) -> Any:
    """A file input that uploads at once (staged only) and puts the upload's token in the
    form's signal ``signal``; a status line shows the progress or the refusal."""
    token_id = f"{input_id}-token"
    return Div(
        Input(type="file", id=input_id, name=name, cls="uk-input", data_sm_attach="false",
              data_sm_token=token_id, **attrs),
        Input(type="hidden", id=token_id, data_bind=signal),
        Small(data_sm_status=True, data_testid=f"upload-status-{name}", cls="text-muted-foreground"),
        cls="space-y-1",
    )


def file_value(record: Entity, name: str) -> Any:
    """The file a record holds, for lists and detail views: a preview of an image, else a
    download link (both through the download route, which checks the read policy)."""
    value = getattr(record, name, None)
    url = file_url(record, name)
    if not isinstance(value, StoredFile) or url is None:
        return Span("—", cls="text-muted-foreground")
    link = A(value.name, href=url, download=value.name, data_testid=f"file-{name}")
    if value.is_image:
        return Div(Img(src=url, alt=value.name, cls="h-16 w-auto rounded border", loading="lazy"), link,
                   cls="flex items-center gap-2")
    return link
