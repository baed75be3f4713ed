"""``@event``: marks the methods the browser may call, and turns class-level calls into
Datastar action expressions (``Counter.increment(5)`` -> ``@post('/counter/increment?amount=5')``).
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, overload
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from starmodel.core.errors import ConfigurationError, ValidationFailed
from starmodel.core.files import CLIENT_INPUT
from starmodel.core.markup import page_syntax
from starmodel.core.rates import Rate, parse_rate
from starmodel.core.signals import JsExpr

if TYPE_CHECKING:
    from starmodel.core.context import CallContext
    from starmodel.core.entity import Entity

__all__ = ["ActionExpr", "BoundEvent", "EventDescriptor", "EventSpec", "event"]

HttpMethod = Literal["get", "post", "put", "patch", "delete"]
PatchMode = Literal["outer", "inner", "replace", "prepend", "append", "before", "after", "remove"]
EventKind = Literal["sync", "async", "asyncgen"]
Allow = Callable[["CallContext"], bool]

_METHODS = ("get", "post", "put", "patch", "delete")
_MODES = ("outer", "inner", "replace", "prepend", "append", "before", "after", "remove")


class ActionExpr(JsExpr):
    """A Datastar action expression such as ``@post('/counter/increment')``."""

    __slots__ = ()


@dataclass
class EventSpec:
    """What ``@event`` recorded about one method."""

    fn: Callable[..., Any]
    method: HttpMethod = "post"
    selector: str | None = None
    mode: PatchMode | None = None
    path: str | None = None
    background: bool = False
    allow: Allow | None = None
    rate: Rate | None = None
    name: str = ""
    kind: EventKind = "sync"
    params: dict[str, inspect.Parameter] = field(default_factory=dict)
    _model: type[BaseModel] | None = None
    _defaults: dict[str, Any] | None = None
    on_class: bool = False
    title: str = ""
    exclusive: bool = False

    def __post_init__(self) -> None:
        self.name = self.fn.__name__
        if not self.title:
            self.title = _first_line(self.fn.__doc__)
        if inspect.isasyncgenfunction(self.fn):
            self.kind = "asyncgen"
        elif inspect.iscoroutinefunction(self.fn):
            self.kind = "async"
        elif inspect.isgeneratorfunction(self.fn):
            raise ConfigurationError(
                f"@event {self.name}: plain generators are not supported; use 'async def' with "
                "'yield' to stream progress"
            )
        signature = inspect.signature(self.fn)
        parameters = list(signature.parameters.values())
        if not parameters or parameters[0].name not in ("self", "cls"):
            raise ConfigurationError(
                f"@event {self.name}: must be a method whose first parameter is 'self' "
                "(an event of one instance) or 'cls' (an event of the class, e.g. create)"
            )
        self.on_class = parameters[0].name == "cls"
        for param in parameters[1:]:
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ConfigurationError(
                    f"@event {self.name}: *args/**kwargs cannot be validated; name each parameter"
                )
            if param.name.startswith("_"):
                raise ConfigurationError(
                    f"@event {self.name}: parameter {param.name!r} may not start with '_'"
                )
            self.params[param.name] = param
        if all(p.default is not inspect.Parameter.empty for p in self.params.values()):
            self._defaults = {name: p.default for name, p in self.params.items()}

    @property
    def label(self) -> str:
        """How messages name the event: its ``title``, else its method name."""
        return self.title or self.name

    @property
    def all_defaults(self) -> dict[str, Any] | None:
        """The parameters' defaults when every parameter has one (a call without arguments
        needs no validation), else ``None``."""
        return self._defaults

    def route_path(self, owner: type[Entity]) -> str:
        """The URL path of this event on ``owner`` (its class decides the namespace)."""
        return self.path or f"/{owner.namespace()}/{self.name}"

    @property
    def params_model(self) -> type[BaseModel]:
        """A pydantic model of the parameters, built once on first use."""
        if self._model is None:
            try:
                hints = typing.get_type_hints(self.fn, include_extras=True)
            except Exception as exc:  # unresolved forward references
                raise ConfigurationError(
                    f"@event {self.name}: cannot resolve parameter annotations ({exc})"
                ) from exc
            fields: dict[str, Any] = {}
            for name, param in self.params.items():
                annotation = hints.get(name, Any)
                default = ... if param.default is inspect.Parameter.empty else param.default
                fields[name] = (annotation, default)
            self._model = create_model(
                f"{self.name}_params",
                # NaN and infinities only for a parameter that says so: AllowInfNan(True)
                __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True, allow_inf_nan=False),
                **fields,
            )
        return self._model

    def validate_params(self, values: dict[str, Any]) -> dict[str, Any]:
        """Validate raw values against the signature; raise ``ValidationFailed`` per field."""
        try:
            model = self.params_model.model_validate(values, context=CLIENT_INPUT)
        except ValidationError as exc:
            raise ValidationFailed.from_pydantic(exc, f"Invalid input for {self.name}") from None
        return {name: getattr(model, name) for name in self.params}


def _first_line(doc: str | None) -> str:
    """A docstring's first line without its closing period ("" without a docstring)."""
    line = (doc or "").strip().split("\n", 1)[0].strip()
    return line[:-1] if line.endswith(".") and not line.endswith("..") else line


CANCEL_SUFFIX = "/cancel"
"""A background event's cancel route is its own path plus this."""


class BoundEvent:
    """An event read from a class or an instance: call it to get the action expression."""

    __slots__ = ("instance", "owner", "spec")

    def __init__(self, spec: EventSpec, owner: type[Entity], instance: Entity | None) -> None:
        self.spec = spec
        self.owner = owner
        self.instance = instance

    @property
    def fn(self) -> Callable[..., Any]:
        """The undecorated method (``Counter.increment.fn(counter, 2)`` runs it directly)."""
        return self.spec.fn

    @property
    def path(self) -> str:
        return self.spec.route_path(self.owner)

    def __call__(self, *args: Any, **kwargs: Any) -> ActionExpr:
        return self.action(*args, **kwargs)

    def action(self, *args: Any, **kwargs: Any) -> ActionExpr:
        """Build the Datastar action; arguments are checked against the method's signature."""
        names = list(self.spec.params)
        if len(args) > len(names):
            raise TypeError(f"{self.spec.name}() takes {len(names)} arguments, got {len(args)}")
        values = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in self.spec.params:
                raise TypeError(f"{self.spec.name}() has no parameter {key!r}")
            if key in values:
                raise TypeError(f"{self.spec.name}() got {key!r} twice")
            values[key] = value
        instance_key = self.owner.route_key(self.instance) if self.instance is not None else None
        if instance_key is not None:
            values = {"_key": instance_key, **values}
        return _action_expression(self.spec.method, self.path, values)

    def cancel(self) -> ActionExpr:
        """The action that stops this background event while it runs (``LongJob.run.cancel()``):
        the event gets ``asyncio.CancelledError`` at its current ``await``; what it changed
        since its last ``yield`` is rolled back (it may catch the error, set a final state
        and ``yield`` once more)."""
        if not self.spec.background:
            raise TypeError(f"{self.spec.name} is not a background event; only those can be cancelled")
        values: dict[str, Any] = {}
        instance_key = self.owner.route_key(self.instance) if self.instance is not None else None
        if instance_key is not None:
            values["_key"] = instance_key
        return _action_expression("post", self.path + CANCEL_SUFFIX, values)

    def __str__(self) -> str:
        return self.action()

    def __repr__(self) -> str:
        return f"<event {self.owner.__name__}.{self.spec.name} {self.spec.method.upper()} {self.path}>"


def _action_expression(method: str, path: str, values: dict[str, Any]) -> ActionExpr:
    literal_parts: list[str] = []
    js_parts: list[str] = []
    for key, value in values.items():
        if key == "_key":
            literal_parts.append(f"_key={quote(str(value), safe='')}")
        elif isinstance(value, JsExpr):
            js_parts.append(f"{quote(key)}=${{encodeURIComponent(JSON.stringify({value}))}}")
        else:
            encoded = json.dumps(value, separators=(",", ":"), default=str)
            literal_parts.append(f"{quote(key)}={quote(encoded, safe='')}")
    query = "&".join(literal_parts)
    if js_parts:
        url = path + "?" + "&".join([*([query] if query else []), *js_parts])
        escaped = url.replace("\\", "\\\\").replace("`", "\\`")
        return ActionExpr(page_syntax().action(method, escaped, template=True))
    url = f"{path}?{query}" if query else path
    return ActionExpr(page_syntax().action(method, url))


class EventDescriptor:
    """What ``@event`` leaves on the class: reading it gives a ``BoundEvent``."""

    def __init__(self, spec: EventSpec) -> None:
        self.spec = spec
        self.__doc__ = spec.fn.__doc__
        self.__wrapped__ = spec.fn

    def __set_name__(self, owner: type, name: str) -> None:
        if name != self.spec.name:
            self.spec.name = name

    def __get__(self, instance: Entity | None, owner: type[Entity]) -> BoundEvent:
        return BoundEvent(self.spec, owner, instance)


@overload
def event(fn: Callable[..., Any], /) -> EventDescriptor: ...
@overload
def event(
    *,
    method: HttpMethod = "post",
    selector: str | None = None,
    mode: PatchMode | None = None,
    path: str | None = None,
    background: bool = False,
    exclusive: bool = False,
    allow: Allow | None = None,
    title: str | None = None,
    rate: str | None = None,
) -> Callable[[Callable[..., Any]], EventDescriptor]: ...
def event(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    method: HttpMethod = "post",
    selector: str | None = None,
    mode: PatchMode | None = None,
    path: str | None = None,
    background: bool = False,
    exclusive: bool = False,
    allow: Allow | None = None,
    title: str | None = None,
    rate: str | None = None,
) -> EventDescriptor | Callable[[Callable[..., Any]], EventDescriptor]:
    """Mark an entity method as callable from the browser.

    Args:
        method: HTTP method of the route (``post`` by default: events change state).
        selector: CSS selector returned components are patched into (default: their ``id``).
        mode: Datastar patch mode for returned components (``outer`` by default).
        path: route path instead of ``/{namespace}/{method_name}``.
        background: run after the answer starts, streaming progress to every viewer.
        exclusive: (background events) one run per entity at a time, in every process: a
            start while one runs is refused (409); pages see ``$<namespace>._running.<event>``.
        allow: ``allow(ctx) -> bool``; a call it refuses changes nothing (403).
        title: how messages (cancel, failure toasts) name the event; default: the first line
            of its docstring, else its name.
        rate: how often one caller (signed-in user, else browser session) may call it, e.g.
            ``"10/minute"`` (``/second``, ``/minute``, ``/hour``); past that the call answers
            429 with ``Retry-After`` and changes nothing.
    """
    method_lower = method.lower()
    if method_lower not in _METHODS:
        raise ConfigurationError(f"@event: method must be one of {', '.join(_METHODS)}")
    if mode is not None and mode not in _MODES:
        raise ConfigurationError(f"@event: mode must be one of {', '.join(_MODES)}")
    if path is not None and not path.startswith("/"):
        raise ConfigurationError(f"@event: path {path!r} must start with '/'")
    if exclusive and not background:
        raise ConfigurationError("@event: exclusive=True applies to background events only")

    def decorate(func: Callable[..., Any]) -> EventDescriptor:
        try:
            limit = parse_rate(rate) if rate is not None else None
        except ConfigurationError as exc:
            raise ConfigurationError(f"@event {getattr(func, '__name__', '?')}: {exc}") from None
        spec = EventSpec(
            func,
            method=method_lower,  # type: ignore[arg-type]
            selector=selector,
            mode=mode,
            path=path,
            background=background,
            allow=allow,
            title=title or "",
            exclusive=exclusive,
            rate=limit,
        )
        return EventDescriptor(spec)

    return decorate(fn) if fn is not None else decorate
