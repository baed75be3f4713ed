"""``Entity``: a pydantic model with behaviour (``@event`` methods) and a declared store."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, PrivateAttr, computed_field

from starmodel.core.errors import ConfigurationError
from starmodel.core.events import EventDescriptor, EventSpec
from starmodel.core.files import file_fields
from starmodel.core.holding import Hold
from starmodel.core.journal import JournalSettings
from starmodel.core.markup import ClientKept, page_syntax
from starmodel.core.policy import Policy
from starmodel.core.records import RecordsDescriptor
from starmodel.core.signals import SignalDescriptor, check_namespace, snake_case
from starmodel.core.store import StateStore

if TYPE_CHECKING:
    from starmodel.core.context import CallContext

__all__ = [
    "Entity",
    "EntityOptions",
    "ServerOnly",
    "computed",
    "registered_entities",
    "registry_version",
]

T = TypeVar("T")


class _ServerOnlyMarker:
    def __repr__(self) -> str:
        return "ServerOnly"


SERVER_ONLY = _ServerOnlyMarker()

ServerOnly = Annotated[T, SERVER_ONLY]
"""Mark a field that never reaches the browser and can never be set from it:
``is_admin: ServerOnly[bool] = False``."""

_SCOPES = ("session", "global", "id")


def computed(fn: Any) -> Any:
    """A read-only value derived from fields; sent to the browser with them and kept current."""
    return computed_field(property(fn))


@dataclass(frozen=True)
class EntityOptions:
    """The StarModel part of ``model_config``, checked once per class."""

    store: StateStore
    scope: str
    ttl: float | None
    namespace: str
    backend: str | None
    table: bool = False
    primary_key: str | None = None
    private: bool = False
    policy: Policy | None = None
    per_process: bool = False
    presence: bool = False
    journal: JournalSettings | None = None


_registry: dict[tuple[str, str], type[Entity]] = {}
_registry_changes = [0]


def registered_entities() -> list[type[Entity]]:
    """Every concrete entity class defined so far, in definition order."""
    return list(_registry.values())


def registry_version() -> int:
    """Grows whenever an entity class is defined (lets adapters cache what they derive)."""
    return _registry_changes[0]


_ModelMeta: type = type(BaseModel)


class _ClassBody(dict[str, Any]):
    """A class body that notices an ``@event`` re-binding a name defined earlier in it."""

    def __init__(self) -> None:
        super().__init__()
        self.rebound: set[str] = set()

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self and (isinstance(value, EventDescriptor) or isinstance(self[key], EventDescriptor)):
            self.rebound.add(key)
        super().__setitem__(key, value)


class EntityMeta(_ModelMeta):
    """Checks an entity class body before pydantic builds it: keeps the class's own
    ``model_config`` (pydantic merges the parents' in) and refuses names that are both a
    field and an event."""

    @classmethod
    def __prepare__(mcs, name: str, bases: tuple[type, ...], **kwargs: Any) -> _ClassBody:
        return _ClassBody()

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any) -> Any:
        raw = namespace.get("model_config", {})
        body = dict(namespace)
        body["__sm_raw_config__"] = dict(raw) if isinstance(raw, dict) else {}
        if kwargs.pop("table", False):
            bases = _adopt_table_bases(bases, body)
            body["__sm_table__"] = True
        events = {key for key, value in body.items() if isinstance(value, EventDescriptor)}
        inherited: set[str] = set()
        for base in bases:
            inherited |= set(getattr(base, "model_fields", {}) or {})
            inherited |= set(getattr(base, "model_computed_fields", {}) or {})
        annotated = set(body.get("__annotations__", {}))
        clash = events & (annotated | inherited | getattr(namespace, "rebound", set()))
        if clash:
            raise ConfigurationError(
                f"{name}: {', '.join(sorted(clash))} cannot be both a field (or computed value) "
                "and an event; rename one"
            )
        # pydantic's metaclass by name, not super(): a metaclass combining this one with an
        # ORM's (see adapters/driven/stores/sql_entity.py) must not run the ORM's class builder
        cls = _ModelMeta.__new__(mcs, name, bases, body, **kwargs)
        _speed_up_private_init(cls)
        return cls

    def __init__(cls, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any) -> None:
        kwargs.pop("table", None)
        super().__init__(name, bases, namespace, **kwargs)


_PRIVATE_DEFAULTS: dict[str, Any] = {
    "_sm_key": None,
    "_sm_version": 0,
    "_sm_pending": None,
    "_sm_owner": None,
}


def _init_private(self: Any, context: Any, /) -> None:
    """StarModel's private attributes, set in one step (pydantic's generic initialisation of
    them costs several times the validation of a small entity, on every load)."""
    if getattr(self, "__pydantic_private__", None) is None:
        object.__setattr__(self, "__pydantic_private__", _PRIVATE_DEFAULTS.copy())


def _speed_up_private_init(cls: Any) -> None:
    """Use ``_init_private`` when the class has no private attributes or ``model_post_init``
    of its own (then pydantic's initialisation is kept, and calls theirs)."""
    if set(getattr(cls, "__private_attributes__", {})) != set(_PRIVATE_DEFAULTS):
        return
    for klass in cls.__mro__:
        method = vars(klass).get("model_post_init")
        while method is not None and hasattr(method, "__wrapped__"):
            method = method.__wrapped__  # pydantic wraps an inherited post-init in each subclass
        if method is not None and method is not _init_private and getattr(method, "__module__", "").split(
            ".", 1
        )[0] != "pydantic":
            return
    cls.model_post_init = _init_private


def _adopt_table_bases(bases: tuple[type, ...], body: dict[str, Any]) -> tuple[type, ...]:
    """``class Product(Entity, BaseTable, table=True)``: the columns of SQLModel bases (such as
    FastSQLModel's ``BaseTable``: id, created_at, updated_at) become fields of the entity, and
    the base itself is dropped; StarModel maps the entity to its table (with its own engine)."""
    kept: list[type] = []
    own = dict(body.get("__annotations__", {}))
    adopted: dict[str, Any] = {}
    for base in bases:
        if not hasattr(base, "__sqlmodel_relationships__"):
            kept.append(base)
            continue
        for field_name, info in getattr(base, "model_fields", {}).items():
            if field_name not in own:
                adopted[field_name] = info.annotation
                body.setdefault(field_name, copy.copy(info))
    body["__annotations__"] = {**adopted, **own}  # the base's columns first, like its table
    return tuple(kept)


class Entity(BaseModel, metaclass=EntityMeta):
    """Base class of every StarModel entity.

    Declare typed fields and ``@event`` methods; choose the store with ``model_config``::

        class Counter(Entity):
            count: int = 0
            model_config = {"store": StateStore.SERVER_MEMORY, "scope": "session"}
    """

    model_config = ConfigDict(
        validate_assignment=True,
        extra="forbid",
        allow_inf_nan=False,  # NaN and infinities only where a field says so: AllowInfNan(True)
        ignored_types=(EventDescriptor, SignalDescriptor, RecordsDescriptor),
    )

    sig: ClassVar[SignalDescriptor] = SignalDescriptor()
    """``Counter.sig.count`` is the documented way to name a field's signal (``$counter.count``);
    for records, ``todo.sig.title`` (``$todo.<key>.title``)."""

    records: ClassVar[RecordsDescriptor] = RecordsDescriptor()
    """``Todo.records``: add / get / list / delete records inside an event."""

    __starmodel_options__: ClassVar[EntityOptions]
    __starmodel_events__: ClassVar[dict[str, EventSpec]] = {}
    __starmodel_server_only__: ClassVar[frozenset[str]] = frozenset()
    __sm_raw_config__: ClassVar[dict[str, Any]] = {}

    _sm_key: str | None = PrivateAttr(default=None)
    _sm_version: int = PrivateAttr(default=0)
    # None until the first emit(): a default_factory would cost every instance a signature lookup
    _sm_pending: list[Any] | None = PrivateAttr(default=None)
    _sm_owner: str | None = PrivateAttr(default=None)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.__starmodel_options__ = _read_options(cls)
        events: dict[str, EventSpec] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, EventDescriptor):
                    events[name] = value.spec
        reserved = set(cls.model_fields) | set(cls.model_computed_fields)
        clash = reserved & set(events)
        if clash:
            raise ConfigurationError(f"{cls.__name__}: {sorted(clash)} are both fields and events")
        cls.__starmodel_events__ = events
        cls.__starmodel_server_only__ = frozenset(
            name for name, info in cls.model_fields.items() if SERVER_ONLY in info.metadata
        )
        if cls.__starmodel_options__.store.is_client and cls.__starmodel_server_only__:
            raise ConfigurationError(
                f"{cls.__name__}: server-only fields ({', '.join(sorted(cls.__starmodel_server_only__))}) "
                f"cannot live in the browser ({cls.__starmodel_options__.store.name}); "
                "keep them in a server store"
            )
        if cls.__starmodel_options__.store.is_client and file_fields(cls):
            raise ConfigurationError(
                f"{cls.__name__}: file fields ({', '.join(file_fields(cls))}) cannot live in the "
                "browser; keep them in a server store"
            )
        if not cls.__dict__.get("__sm_raw_config__", {}).get("abstract"):
            _registry[(cls.__module__, cls.__qualname__)] = cls
            _registry_changes[0] += 1

    # --- class-level facts -------------------------------------------------------------

    @classmethod
    def options(cls) -> EntityOptions:
        return cls.__starmodel_options__

    @classmethod
    def namespace(cls) -> str:
        """The signal namespace: ``model_config["namespace"]`` or the snake_cased class name."""
        return cls.__starmodel_options__.namespace

    @classmethod
    def events(cls) -> dict[str, EventSpec]:
        return dict(cls.__starmodel_events__)

    @classmethod
    def permits(cls, action: str, ctx: CallContext) -> bool:
        """Whether ``model_config["policy"]`` lets ``ctx`` do ``action`` (read, create, update,
        delete, events); entities without a policy permit everything."""
        policy = cls.__starmodel_options__.policy
        return True if policy is None else policy.allows(action, ctx)

    @classmethod
    def public_signal_names(cls) -> list[str]:
        """Fields and computed values the browser sees (server-only fields excluded)."""
        hidden = cls.__starmodel_server_only__
        names = [name for name in cls.model_fields if name not in hidden]
        return names + list(cls.model_computed_fields)

    @classmethod
    def route_key(cls, instance: Entity) -> str | None:
        """The key an instance-level action carries (``None``: identity comes from the session)."""
        if cls.__starmodel_options__.scope != "id":
            return None
        return instance.record_key()

    # --- instance state ----------------------------------------------------------------

    def public_state(self) -> dict[str, Any]:
        """The browser-visible state, JSON-ready (computed values included)."""
        hidden = type(self).__starmodel_server_only__
        return self.model_dump(mode="json", exclude=set(hidden) if hidden else None)

    def signals(self) -> dict[str, Any]:
        """``{namespace: public_state}`` (records: ``{namespace: {key: public_state}}``), the
        shape ``data-signals`` takes."""
        cls = type(self)
        if cls.__starmodel_options__.scope == "id":
            return {cls.namespace(): {self.record_key() or "_new": self.public_state()}}
        return {cls.namespace(): self.public_state()}

    def record_key(self) -> str | None:
        """The key of a record (its primary key as text), ``None`` before it is saved."""
        options = type(self).__starmodel_options__
        if options.primary_key is not None:
            value = getattr(self, options.primary_key)
            return None if value is None else str(value)
        return self._sm_key

    def dom_id(self) -> str:
        """The element id of this entity's view: ``todo-3`` for records, ``counter`` otherwise
        (live lists remove a deleted record's row by it)."""
        namespace = type(self).namespace()
        if type(self).__starmodel_options__.scope == "id":
            return f"{namespace}-{self.record_key() or 'new'}"
        return namespace

    def __html__(self) -> str:
        """Rendering an entity emits its signals, so ``data-text``/``data-bind`` work at once
        (written in the page syntax the web adapter installed: ``core.markup``)."""
        cls = type(self)
        options = cls.__starmodel_options__
        anchor = cls.namespace()
        if options.scope == "id":
            anchor += f"-{self.record_key() or 'new'}"
        kept = None
        if options.store.is_client:  # restored from browser storage, checked by the server
            storage = "local" if options.store is StateStore.CLIENT_LOCAL else "session"
            kept = ClientKept(anchor, storage, tuple(cls.model_fields))
        return page_syntax().entity_element(anchor, self.signals(), kept)

    def hold(self) -> Hold:
        """``async with self.hold():`` in a background or streaming event keeps the entity held
        across the waits inside the block (others wait), committing at its end; elsewhere the
        body holds it only between waits. In a plain event (held throughout) it does nothing."""
        return Hold()

    def emit(self, event: Any) -> None:
        """Record a domain event; it is published on the bus after the unit of work commits."""
        if self._sm_pending is None:
            self._sm_pending = []
        self._sm_pending.append(event)

    def collect_events(self) -> list[Any]:
        """Take the domain events recorded since the last call (the unit of work drains them)."""
        private = self.__pydantic_private__  # plain dict access: this runs on every commit
        pending = private.get("_sm_pending") if private is not None else None
        if not pending:
            return []
        self._sm_pending = None
        return pending


def _read_options(cls: type[Entity]) -> EntityOptions:
    config: dict[str, Any] = dict(cls.model_config)
    own = getattr(cls, "__sm_raw_config__", {})
    table = bool(getattr(cls, "__sm_table__", False))
    default_store = StateStore.SERVER_SQL if table else StateStore.SERVER_MEMORY
    try:
        store = StateStore(config.get("store", default_store))
    except ValueError:
        choices = ", ".join(s.name for s in StateStore)
        raise ConfigurationError(
            f"{cls.__name__}: unknown store {config.get('store')!r}; use StateStore.{{{choices}}}"
        ) from None
    default_scope = "id" if store is StateStore.SERVER_SQL else "session"
    scope = config.get("scope", default_scope)
    if scope not in _SCOPES:
        raise ConfigurationError(
            f"{cls.__name__}: scope must be 'session', 'global' or 'id', not {scope!r}"
        )
    ttl = config.get("ttl")
    if ttl is not None and (not isinstance(ttl, int | float) or ttl <= 0):
        raise ConfigurationError(f"{cls.__name__}: ttl must be a positive number of seconds")
    namespace = own.get("namespace") or snake_case(cls.__name__)
    keys = [n for n, info in cls.model_fields.items() if getattr(info, "primary_key", None) is True]
    if store is StateStore.SERVER_SQL:
        if not table:
            raise ConfigurationError(
                f"{cls.__name__}: SQL entities are declared with table=True: "
                f"class {cls.__name__}(Entity, table=True)"
            )
        if len(keys) != 1:
            raise ConfigurationError(
                f"{cls.__name__}: a SQL entity needs exactly one primary key field, e.g. "
                "id: int | None = Field(default=None, primary_key=True) (from sqlmodel)"
            )
        if scope != "id":
            raise ConfigurationError(f"{cls.__name__}: SQL entities are addressed by primary key")
    elif table:
        raise ConfigurationError(f"{cls.__name__}: table=True needs store SERVER_SQL (the default)")
    if store is StateStore.CUSTOM and not isinstance(config.get("backend"), str):
        raise ConfigurationError(
            f"{cls.__name__}: store CUSTOM needs model_config['backend'], the name of an "
            "installed persistence plugin (see `starmodel plugins list`)"
        )
    if store.is_client:
        if scope != "session":
            raise ConfigurationError(
                f"{cls.__name__}: {store.name} entities belong to one browser "
                f"({'tab' if store is StateStore.CLIENT_SESSION else 'profile'}); scope must be 'session'"
            )
        if ttl is not None:
            raise ConfigurationError(f"{cls.__name__}: ttl does not apply to {store.name} entities")
    private = config.get("private", False)
    if private not in (False, True, "session"):
        raise ConfigurationError(f"{cls.__name__}: private must be True ('session') or False")
    if private and scope != "id":
        raise ConfigurationError(
            f"{cls.__name__}: private applies to records (scope 'id'); session entities are "
            "private to their session already"
        )
    per_process = config.get("per_process", False)
    if per_process not in (False, True):
        raise ConfigurationError(f"{cls.__name__}: per_process must be True or False")
    if per_process and (store is not StateStore.SERVER_MEMORY or scope != "global"):
        raise ConfigurationError(
            f"{cls.__name__}: per_process applies to global SERVER_MEMORY entities (each server "
            "process keeps its own copy, even when REDIS_URL is set)"
        )
    presence = config.get("presence", False)
    if presence not in (False, True):
        raise ConfigurationError(f"{cls.__name__}: presence must be True or False")
    if presence and (scope == "session" or private):
        raise ConfigurationError(
            f"{cls.__name__}: presence applies to records (scope 'id') and global entities, which "
            "several people can look at; a session's entity or a private record has one viewer"
        )
    return EntityOptions(
        store=store,
        scope=scope,
        ttl=float(ttl) if ttl is not None else None,
        namespace=check_namespace(namespace, cls.__name__),
        backend=config.get("backend"),
        table=table,
        primary_key=keys[0] if keys else None,
        private=bool(private),
        policy=Policy.parse(config.get("policy"), cls.__name__),
        per_process=bool(per_process),
        presence=bool(presence),
        journal=JournalSettings.parse(config.get("journal"), cls.__name__),
    )
