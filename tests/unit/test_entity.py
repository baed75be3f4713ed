"""Entity: validated fields, computed values, server-only fields, options and namespaces."""

import json
from html.parser import HTMLParser

import pytest
from pydantic import ValidationError

from starmodel import ConfigurationError, Entity, ServerOnly, StateStore, computed, event
from starmodel.core.entity import registered_entities


class Basket(Entity):
    items: list[int] = []
    owner: str = "nobody"
    is_admin: ServerOnly[bool] = False
    password_hash: ServerOnly[str] = ""

    @computed
    def total(self) -> int:
        return sum(self.items)

    @event
    def add(self, item: int):
        self.items = [*self.items, item]


class HTTPStatusBoard(Entity):
    code: int = 200


class Renamed(Entity):
    model_config = {"namespace": "my_renamed", "scope": "global", "ttl": 30}
    value: int = 0


# --- fields and validation ---------------------------------------------------------------


def test_assignment_is_validated_and_coerced():
    basket = Basket()
    basket.owner = "ann"
    basket.items = ["1", 2]  # type: ignore[list-item]
    assert basket.items == [1, 2]
    with pytest.raises(ValidationError):
        basket.items = ["x"]  # type: ignore[list-item]
    assert basket.items == [1, 2]


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError):
        Basket(colour="red")  # type: ignore[call-arg]


def test_computed_field_follows_its_inputs():
    basket = Basket(items=[1, 2])
    assert basket.total == 3
    basket.items = [10]
    assert basket.public_state()["total"] == 10


# --- server-only fields ------------------------------------------------------------------


def test_server_only_fields_never_reach_the_browser():
    basket = Basket(items=[4], is_admin=True, password_hash="secret-hash")
    assert basket.public_state() == {"items": [4], "owner": "nobody", "total": 4}
    assert basket.signals() == {"basket": {"items": [4], "owner": "nobody", "total": 4}}
    assert "secret-hash" not in basket.__html__()
    assert "is_admin" not in basket.__html__()


def test_server_only_fields_are_not_public_signal_names():
    assert Basket.public_signal_names() == ["items", "owner", "total"]
    with pytest.raises(AttributeError):
        Basket.sig.is_admin  # noqa: B018


def test_server_only_fields_are_still_validated():
    basket = Basket()
    with pytest.raises(ValidationError):
        basket.is_admin = "maybe"  # type: ignore[assignment]


# --- rendering ---------------------------------------------------------------------------


class _Attrs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def test_html_emits_signals_and_escapes_markup_and_quotes():
    basket = Basket(owner="<script>alert('x')</script>\" onload=\"evil()")
    markup = basket.__html__()
    assert "<script>" not in markup
    assert 'onload="' not in markup
    parser = _Attrs()
    parser.feed(markup)
    [(tag, attrs)] = parser.found
    assert tag == "div"
    assert attrs["id"] == "sm-signals-basket"
    assert "hidden" in attrs
    decoded = json.loads(attrs["data-signals"] or "")
    assert decoded == basket.signals()


# --- options and namespaces --------------------------------------------------------------


def test_default_options():
    options = Basket.options()
    assert options.store is StateStore.SERVER_MEMORY
    assert options.scope == "session"
    assert options.ttl is None
    assert Basket.namespace() == "basket"


def test_namespace_is_snake_cased_class_name():
    assert HTTPStatusBoard.namespace() == "http_status_board"


def test_namespace_and_options_from_model_config():
    assert Renamed.namespace() == "my_renamed"
    assert Renamed.options().scope == "global"
    assert Renamed.options().ttl == 30.0
    assert Renamed.sig.value == "$my_renamed.value"


def test_subclass_gets_its_own_namespace_but_inherits_store_options():
    class RenamedChild(Renamed):
        pass

    assert RenamedChild.namespace() == "renamed_child"
    assert RenamedChild.options().scope == "global"


def test_unknown_store_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="unknown store"):

        class BadStore(Entity):
            model_config = {"store": "floppy_disk"}


@pytest.mark.parametrize("scope", ["tab", "", "GLOBAL", None])
def test_bad_scope_is_a_configuration_error(scope):
    with pytest.raises(ConfigurationError, match="scope"):

        class BadScope(Entity):
            model_config = {"scope": scope}


@pytest.mark.parametrize("ttl", [0, -5, "60", [1]])
def test_bad_ttl_is_a_configuration_error(ttl):
    with pytest.raises(ConfigurationError, match="ttl"):

        class BadTtl(Entity):
            model_config = {"ttl": ttl}


@pytest.mark.parametrize("namespace", ["Bad", "_local", "9lives", "with-dash", "a.b", "$x"])
def test_bad_namespace_is_a_configuration_error(namespace):
    with pytest.raises(ConfigurationError, match="namespace"):

        class BadNamespace(Entity):
            model_config = {"namespace": namespace}


def test_class_name_that_cannot_be_a_namespace_needs_an_explicit_one():
    with pytest.raises(ConfigurationError, match="namespace"):

        class _Private(Entity):
            pass


# --- field / event name clashes ------------------------------------------------------------


def test_field_and_event_with_the_same_name_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="count"):

        class ClashSameClass(Entity):
            count: int = 0

            @event
            def count(self):  # type: ignore[no-redef]  # noqa: F811
                pass


def test_event_clashing_with_an_inherited_field_is_a_configuration_error():
    class ClashBase(Entity):
        count: int = 0

    with pytest.raises(ConfigurationError, match="count"):

        class ClashChild(ClashBase):
            @event
            def count(self):  # type: ignore[override]
                pass


@pytest.mark.filterwarnings("ignore:.*overrides an existing Pydantic:UserWarning")
def test_event_clashing_with_a_computed_field_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="total"):

        class ClashComputed(Entity):
            @computed
            def total(self) -> int:
                return 1

            @event  # type: ignore[no-redef]
            def total(self):  # noqa: F811
                pass


# --- events on the class -----------------------------------------------------------------


def test_events_are_collected_including_inherited_ones():
    class BasketWithClear(Basket):
        @event
        def clear(self):
            self.items = []

    assert set(Basket.events()) == {"add"}
    assert set(BasketWithClear.events()) == {"add", "clear"}


def test_domain_events_are_collected_once():
    basket = Basket()
    basket.emit("first")
    basket.emit("second")
    assert basket.collect_events() == ["first", "second"]
    assert basket.collect_events() == []


def test_abstract_base_is_not_registered_but_its_concrete_subclass_is():
    class AbstractThing(Entity):
        model_config = {"abstract": True}
        x: int = 0

    class ConcreteThing(AbstractThing):
        pass

    registered = registered_entities()
    assert AbstractThing not in registered
    assert ConcreteThing in registered


def test_private_state_is_fresh_per_instance_and_own_private_attributes_still_work() -> None:
    from pydantic import PrivateAttr

    class Plain(Entity):
        x: int = 0

    class WithOwn(Entity):
        x: int = 0
        _cache: list[int] = PrivateAttr(default_factory=list)

    class WithPostInit(Entity):
        x: int = 0

        def model_post_init(self, context: object) -> None:
            self.x = 42

    first, second = Plain.model_validate({"x": 1}), Plain()
    first._sm_key, first._sm_version = "a", 3
    assert (second._sm_key, second._sm_version, second._sm_owner) == (None, 0, None)
    assert Plain.model_construct(x=2)._sm_version == 0
    one, two = WithOwn(), WithOwn()
    one._cache.append(1)
    assert two._cache == [] and one._sm_version == 0
    assert WithPostInit().x == 42 and WithPostInit()._sm_key is None
