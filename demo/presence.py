"""Presence: who else is looking at this ticket, right now.

``Ticket`` (the board's cards) declares ``model_config = {"presence": True}``; the page draws
``await sm.presence_view(ticket)``, and that one line both shows the viewers and makes the tab
one of them. Open the page in two browsers: each sees the other's avatar appear; close one and
it goes. With ``REDIS_URL`` the viewers are kept in Redis, so tabs on different server
processes see each other, and the tabs of a process that dies drop out within 20 seconds.
"""

from __future__ import annotations

from typing import Any

from datastar_py import attribute_generator as data
from fasthtml.common import A, Div, P, Span
from monsterui.all import H3, Button, ButtonT, Card, TextPresets
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from demo.board import Ticket, nickname
from demo.layout import feature, page
from starmodel import CallContext, StarModel, Viewer, default_viewer
from starmodel.contrib.auth import Auth

__all__ = ["describe_viewer", "install_presence", "ticket_card", "who_is_looking"]


def describe_viewer(ctx: CallContext) -> Viewer:
    """Signed-in people by their name; visitors by the board's nickname for their session."""
    viewer = default_viewer(ctx)
    if ctx.user is not None:
        return viewer
    return Viewer(viewer.id, nickname(ctx.session_id))


async def who_is_looking(sm: StarModel, ticket: Ticket) -> Any:
    return Card(
        await sm.presence_view(ticket),  # shows the viewers, and makes this tab one of them
        P("Open this ticket in another browser (or a private window): its avatar appears here. "
          "Close it and it goes.", cls=TextPresets.muted_sm + " mt-3"),
        header=H3("Who is looking"),
    )


def ticket_card(ticket: Ticket) -> Any:
    sig = ticket.sig
    return Card(
        ticket,
        P(Span(ticket.title, data.text(sig.title), cls="font-semibold"), id="presence-ticket-title"),
        P("Lane: ", Span(ticket.lane.value, data.text(sig.lane), id="presence-ticket-lane"),
          cls=TextPresets.muted_sm),
        Button("Move to the next lane", data.on("click", ticket.advance()), cls=ButtonT.primary,
               id="presence-advance"),
        header=H3(f"Ticket #{ticket.id}"),
    )


def install_presence(sm: StarModel, auth: Auth) -> None:
    """The ``/presence`` page (``?ticket=<id>``: which ticket; the first one by default)."""
    sm.presence.describe(describe_viewer)

    @sm.app.route("/presence")
    async def presence_page(request: Request) -> Any:
        tickets = await sm.list(Ticket, limit=20)
        wanted = request.query_params.get("ticket")
        if wanted is not None and not wanted.isdigit():
            return PlainTextResponse("ticket must be a ticket's number", status_code=400)
        ticket = next((t for t in tickets if wanted is None or str(t.id) == wanted), None)
        if wanted is not None and ticket is None:
            ticket = await sm.find(Ticket, wanted)
            if ticket is None:
                return PlainTextResponse(f"there is no ticket {wanted}", status_code=404)
        others = Div(
            *[A(f"#{t.id} {t.title}", href=f"/presence?ticket={t.id}", cls="sc-pill mr-1",
                data_testid="presence-ticket-link") for t in tickets if ticket is None or t.id != ticket.id],
            cls="flex flex-wrap gap-1",
        )
        shown = (
            Div(ticket_card(ticket), await who_is_looking(sm, ticket), cls="space-y-4")
            if ticket is not None else P("The board has no tickets yet: add one on the live board.")
        )
        return page(
            request, "Presence",
            P("Who is looking at this ticket right now, in every browser and every server process: "
              "tabs join when they open the page and leave when they close it.", cls="sc-lead"),
            feature("A ticket, and who has it open", "model_config = {\"presence\": True} on the entity; "
                    "await sm.presence_view(ticket) in the page.", shown, Ticket, who_is_looking,
                    describe_viewer),
            Div(P("Other tickets:", cls=TextPresets.muted_sm), others, cls="space-y-2"),
            user=await auth.user(request),
        )
