"""The showcase's page chrome: a header with the navigation and the theme picker on every page,
feature sections that put a live widget beside the code that makes it, and that code, read from
the running module (``inspect.getsource``) and highlighted here with the standard library's
tokenizer, so what the page shows cannot drift from what runs.

The few styles the layout needs are in ``STYLES`` (plain CSS on the theme's colour variables, so
light and dark mode and every theme colour apply), not in Tailwind classes: the page looks the
same whatever the compiled CSS holds.
"""

from __future__ import annotations

import inspect
import io
import keyword
import textwrap
import tokenize
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fasthtml.common import A, B, Code, Div, Footer, Header, Main, Nav, NotStr, P, Pre, Span, Style, Title
from markupsafe import escape
from monsterui.all import H1, H2, TextPresets

from starmodel.ui import theme_picker

__all__ = [
    "NAV", "STYLES", "code_panel", "feature", "highlight", "install_styles", "page", "source_of", "tiles",
]

REPO = Path(__file__).resolve().parents[1]

NAV: tuple[tuple[str, str], ...] = (
    ("/", "Home"),
    ("/board", "Live board"),
    ("/presence", "Presence"),
    ("/state", "State"),
    ("/streaming", "Streaming"),
    ("/records", "SQL records"),
    ("/redis", "Redis & TTL"),
    ("/preferences", "Preferences"),
    ("/actions", "Actions"),
    ("/crud", "CRUD & admin"),
    ("/files", "Uploads"),
    ("/journal", "Journal"),
    ("/auth", "Sign-in"),
)
"""The header's links, in order: (path, label)."""

STYLES = """
.sc-shell{min-height:100vh;display:flex;flex-direction:column}
.sc-header{position:sticky;top:0;z-index:20;background:hsl(var(--background)/.92);
  backdrop-filter:blur(8px);border-bottom:1px solid hsl(var(--border))}
.sc-bar{max-width:80rem;margin:0 auto;padding:.6rem 1rem;display:flex;align-items:center;
  gap:.75rem;flex-wrap:wrap}
.sc-brand{display:flex;align-items:center;gap:.5rem;font-weight:700;font-size:1.05rem;
  color:hsl(var(--foreground));text-decoration:none;white-space:nowrap}
.sc-logo{width:1.6rem;height:1.6rem;border-radius:.45rem;display:grid;place-items:center;
  background:hsl(var(--primary));color:hsl(var(--primary-foreground));font-size:.9rem}
.sc-tools{margin-left:auto;display:flex;align-items:center;gap:.75rem;flex-wrap:wrap}
.sc-account{font-size:.85rem;color:hsl(var(--muted-foreground));white-space:nowrap}
.sc-account a{color:hsl(var(--primary));text-decoration:none;font-weight:500}
.sc-nav{max-width:80rem;margin:0 auto;padding:0 1rem .45rem;display:flex;gap:.25rem;
  overflow-x:auto;scrollbar-width:thin}
.sc-nav a{padding:.3rem .65rem;border-radius:.45rem;font-size:.875rem;white-space:nowrap;
  color:hsl(var(--muted-foreground));text-decoration:none}
.sc-nav a:hover{background:hsl(var(--muted));color:hsl(var(--foreground))}
.sc-nav a[aria-current=page]{background:hsl(var(--primary)/.12);color:hsl(var(--primary));
  font-weight:600}
.sc-main{flex:1;width:100%;max-width:80rem;margin:0 auto;padding:1.5rem 1rem 3rem}
.sc-main>*+*{margin-top:1.5rem}
.sc-lead{font-size:1.05rem;color:hsl(var(--muted-foreground));max-width:48rem}
.sc-footer{border-top:1px solid hsl(var(--border));padding:1rem;text-align:center;
  font-size:.8rem;color:hsl(var(--muted-foreground))}
.sc-feature{display:grid;gap:1rem;grid-template-columns:minmax(0,1fr)}
@media (min-width:1024px){.sc-feature{grid-template-columns:minmax(0,5fr) minmax(0,6fr)}}
.sc-feature>div>*+*{margin-top:.75rem}
.sc-home-code .sc-code pre{max-height:13.5rem}
.sc-code{border:1px solid hsl(var(--border));border-radius:.6rem;overflow:hidden;
  background:hsl(var(--muted)/.45);min-width:0}
.sc-code-head{display:flex;justify-content:space-between;gap:.5rem;padding:.4rem .75rem;
  font-size:.75rem;color:hsl(var(--muted-foreground));border-bottom:1px solid hsl(var(--border))}
.sc-code pre{margin:0;padding:.75rem;overflow:auto;max-height:28rem;font-size:.78rem;
  line-height:1.45;background:transparent;border:0;color:hsl(var(--foreground))}
.sc-code code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre}
.tk-k{color:#7c3aed;font-weight:600}.tk-s{color:#0f766e}.tk-c{color:#6b7280;font-style:italic}
.tk-n{color:#b45309}.tk-d{color:#c026d3}.tk-f{color:#2563eb;font-weight:600}.tk-b{color:#0369a1}
.dark .tk-k{color:#c4b5fd}.dark .tk-s{color:#5eead4}.dark .tk-c{color:#9ca3af}
.dark .tk-n{color:#fcd34d}.dark .tk-d{color:#f0abfc}.dark .tk-f{color:#93c5fd}.dark .tk-b{color:#7dd3fc}
.sc-hero{display:grid;gap:1.5rem;align-items:start;grid-template-columns:minmax(0,1fr)}
@media (min-width:1024px){.sc-hero{grid-template-columns:minmax(0,1fr) minmax(0,1fr)}}
.sc-hero h1{font-size:clamp(1.9rem,5vw,3rem);line-height:1.1;font-weight:800;letter-spacing:-.02em;
  margin:.6rem 0 .9rem}
.sc-accent{color:hsl(var(--primary))}
.sc-cta{display:flex;gap:.5rem;flex-wrap:wrap;margin-top:1rem}
.sc-points-list{list-style:none;padding:0;margin:1.25rem 0 0;display:grid;gap:.5rem;font-size:.95rem}
.sc-points-list li{padding-left:1.6rem;position:relative}
.sc-points-list li::before{content:"✓";position:absolute;left:0;top:0;width:1.2rem;height:1.2rem;
  border-radius:999px;display:grid;place-items:center;font-size:.7rem;font-weight:700;
  background:hsl(var(--primary)/.14);color:hsl(var(--primary))}
.sc-tiles{display:grid;gap:1rem;grid-template-columns:repeat(auto-fill,minmax(15rem,1fr))}
.sc-tile{display:block;border:1px solid hsl(var(--border));border-radius:.75rem;padding:1rem;
  text-decoration:none;color:hsl(var(--foreground));background:hsl(var(--card));
  transition:border-color .15s,transform .15s}
.sc-tile:hover{border-color:hsl(var(--primary));transform:translateY(-2px)}
.sc-tile b{display:block;margin-bottom:.25rem}
.sc-tile span{font-size:.875rem;color:hsl(var(--muted-foreground))}
.sc-pill{display:inline-block;font-size:.7rem;font-weight:600;padding:.1rem .5rem;
  border-radius:999px;background:hsl(var(--primary)/.12);color:hsl(var(--primary))}
.sc-note{border:1px dashed hsl(var(--primary)/.6);border-radius:.6rem;padding:.75rem 1rem;
  background:hsl(var(--primary)/.06);font-size:.9rem}
.sc-note code{font-size:.8rem}
@media (max-width:640px){
  .sc-bar{gap:.5rem}.sc-tools{margin-left:0;width:100%;justify-content:space-between}
  .sc-tools .uk-btn{padding:0 .55rem;font-size:.8rem;height:2rem}
  .sc-tools .w-28{width:5.5rem}.sc-tools .uk-select{height:2rem;font-size:.8rem}
  .sc-main{padding-top:1rem}.sc-main h1{font-size:1.6rem}
  .sc-main .space-x-4{flex-wrap:wrap;gap:.5rem}.sc-main .space-x-4>*{margin:0}
}
.sc-stats{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:.5rem}
.sc-stat{border:1px solid hsl(var(--border));border-radius:.6rem;padding:.5rem .75rem}
.sc-stat b{display:block;font-size:1.5rem;font-variant-numeric:tabular-nums}
.sc-stat span{font-size:.75rem;color:hsl(var(--muted-foreground))}
"""


GENERATED_PAGES_ON_A_PHONE = """
@media (max-width:640px){
  .uk-container .flex,.sc-main .flex{flex-wrap:wrap}
  .uk-card{overflow-x:auto}
}
"""
"""The framework's generated pages (products, admin, sign-in) in a phone-sized window: rows wrap,
wide tables scroll inside their card."""


def install_styles(sm: Any, *more: str) -> None:
    """Put the showcase's styles (and ``more``) in the head of every page the app serves, the
    generated ones included."""
    sm.app.hdrs = [*sm.app.hdrs, Style("\n".join((STYLES, GENERATED_PAGES_ON_A_PHONE, *more)),
                                       id="showcase-styles")]


def page(request: Any, title: str, *content: Any, user: Any = None, wide_title: Any = None) -> Any:
    """A showcase page: the header (brand, navigation, theme picker, account), the title, the
    content. ``user`` is the signed-in user, if any (shown with a sign-out link)."""
    path = request.url.path
    links = [
        A(label, href=href, aria_current="page" if href == path else None,
          data_testid=f"nav-{href.strip('/') or 'home'}")
        for href, label in NAV
    ]
    account = (
        Span(Span(user.email, data_testid="nav-user"), " · ",
             A("Admin", href="/admin", data_testid="nav-admin"))
        if user is not None
        else A("Sign in", href="/auth/login", data_testid="nav-sign-in")
    )
    heading = wide_title if wide_title is not None else H1(title)
    return Title(f"{title} · StarModel demo"), Div(
        Header(
            Div(
                A(Span("S", cls="sc-logo"), "StarModel", href="/", cls="sc-brand", data_testid="nav-brand"),
                Div(Span(account, cls="sc-account"), theme_picker(), cls="sc-tools"),
                cls="sc-bar",
            ),
            Nav(*links, cls="sc-nav", aria_label="Showcase pages"),
            cls="sc-header",
        ),
        Main(heading, *content, cls="sc-main"),
        Footer(
            "StarModel showcase: every widget is live, every code panel is read from the module "
            "that runs it.",
            cls="sc-footer",
        ),
        cls="sc-shell",
    )


def feature(title: str, lead: str, widget: Any, *sources: Any, anchor: str | None = None) -> Any:
    """One feature: its title and what it shows, the live ``widget``, and beside it the code
    of ``sources`` (classes or functions of the running app)."""
    return Div(
        Div(H2(title), P(lead, cls=TextPresets.muted_sm), widget, cls="space-y-4 min-w-0"),
        Div(*[code_panel(obj) for obj in sources], cls="space-y-4 min-w-0"),
        cls="sc-feature",
        id=anchor,
    )


def source_of(obj: Any) -> tuple[str, str]:
    """``(file, source)`` of a class or function, as the running interpreter sees it."""
    file = inspect.getsourcefile(obj) or "?"
    try:
        shown = Path(file).resolve().relative_to(REPO).as_posix()
    except ValueError:
        shown = Path(file).name
    return shown, textwrap.dedent(inspect.getsource(obj))


def code_panel(obj: Any, caption: str | None = None) -> Any:
    """The highlighted source of ``obj``, with its file and name above it."""
    file, text = source_of(obj)
    name = caption or getattr(obj, "__qualname__", getattr(obj, "__name__", ""))
    return Div(
        Div(Span(file), Span(name), cls="sc-code-head"),
        Pre(Code(highlight(text)), data_source=name),
        cls="sc-code",
    )


_LAYOUT_TOKENS = (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.COMMENT)
_BUILTINS = frozenset({"self", "cls", "int", "str", "float", "bool", "list", "dict", "round", "len",
                       "range", "max", "min", "abs", "super", "isinstance"})


def highlight(source: str) -> Any:
    """``source`` as HTML with its keywords, strings, comments, numbers, decorators and defined
    names in ``tk-*`` spans; text the tokenizer cannot read is shown plain."""
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    row, col = 1, 0
    previous = ""

    def copy_to(end: tuple[int, int]) -> None:
        nonlocal row, col
        while row < end[0]:
            out.append(str(escape(lines[row - 1][col:])))
            row, col = row + 1, 0
        out.append(str(escape(lines[row - 1][col:end[1]])) if row <= len(lines) else "")
        col = end[1]

    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return source
    for tok in tokens:
        if tok.type in (tokenize.ENDMARKER,) or tok.start[0] > len(lines):
            break
        copy_to(tok.start)
        kind = _kind(tok, previous)
        text = str(escape(tok.string))
        out.append(f'<span class="tk-{kind}">{text}</span>' if kind else text)
        row, col = tok.end
        if tok.type not in _LAYOUT_TOKENS:
            previous = tok.string
    if row <= len(lines):
        copy_to((len(lines), len(lines[-1])))
    return NotStr("".join(out))


def _kind(tok: tokenize.TokenInfo, previous: str) -> str:
    if tok.type == tokenize.NAME:
        if keyword.iskeyword(tok.string) or tok.string in ("match", "case"):
            return "k"
        if previous in ("def", "class"):
            return "f"
        if previous == "@":
            return "d"
        return "b" if tok.string in _BUILTINS else ""
    if tok.type == tokenize.STRING or tok.type == getattr(tokenize, "FSTRING_START", -1):
        return "s"
    if tok.type == tokenize.COMMENT:
        return "c"
    if tok.type == tokenize.NUMBER:
        return "n"
    if tok.type == tokenize.OP and tok.string == "@":
        return "d"
    return ""


def tiles(items: Sequence[tuple[str, str, str]]) -> Any:
    """Links to pages as tiles: (path, title, one line)."""
    return Div(
        *[A(B(title), Span(text), href=href, cls="sc-tile", data_testid=f"tile-{href.strip('/')}")
          for href, title, text in items],
        cls="sc-tiles",
    )

