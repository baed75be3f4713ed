"""``@event``: options, kinds, parameter checks, action expressions and signal references."""

from urllib.parse import parse_qs, urlsplit

import pytest

from starmodel import ConfigurationError, Entity, ValidationFailed, event
from starmodel.core.signals import SignalRef


class Counter(Entity):
    count: int = 0
    label: str = ""

    @event
    def increment(self, amount: int = 1):
        self.count += amount

    @event(selector="#status", mode="inner")
    def reset(self):
        self.count = 0

    @event
    async def slow(self, steps: int):
        self.count = steps

    @event
    async def stream(self, items: list[str]):
        for item in items:
            self.label = item
            yield None

    @event(method="DELETE", path="/api/counter/wipe")
    def wipe(self):
        self.count = 0

    @event
    def rename(self, label: str, times: int = 1):
        self.label = label * times


# --- options -----------------------------------------------------------------------------


def test_default_options():
    spec = Counter.events()["increment"]
    assert spec.method == "post"
    assert spec.selector is None
    assert spec.mode is None
    assert spec.background is False
    assert spec.allow is None
    assert spec.route_path(Counter) == "/counter/increment"


def test_explicit_options_are_recorded():
    reset = Counter.events()["reset"]
    assert (reset.selector, reset.mode) == ("#status", "inner")
    wipe = Counter.events()["wipe"]
    assert wipe.method == "delete"
    assert wipe.route_path(Counter) == "/api/counter/wipe"
    assert Counter.wipe() == "@delete('/api/counter/wipe')"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "fetch"}, "method"),
        ({"mode": "sideways"}, "mode"),
        ({"path": "no-slash"}, "path"),
    ],
)
def test_bad_options_are_configuration_errors(options, message):
    with pytest.raises(ConfigurationError, match=message):
        event(**options)


# --- kinds and signatures ----------------------------------------------------------------


def test_kinds_are_detected():
    events = Counter.events()
    assert events["increment"].kind == "sync"
    assert events["slow"].kind == "async"
    assert events["stream"].kind == "asyncgen"


def test_plain_generators_are_refused():
    with pytest.raises(ConfigurationError, match="generator"):

        @event
        def gen(self):
            yield 1


def test_star_args_are_refused():
    with pytest.raises(ConfigurationError, match=r"\*args"):

        @event
        def many(self, *values: int):
            pass


def test_star_kwargs_are_refused():
    with pytest.raises(ConfigurationError, match=r"\*\*kwargs"):

        @event
        def many(self, **values: int):
            pass


def test_first_parameter_must_be_self():
    with pytest.raises(ConfigurationError, match="self"):

        @event
        def not_a_method(amount: int):
            pass


def test_private_parameter_names_are_refused():
    with pytest.raises(ConfigurationError, match="_key"):

        @event
        def sneaky(self, _key: str):
            pass


def test_parameters_are_validated_by_signature():
    spec = Counter.events()["rename"]
    assert spec.validate_params({"label": "a", "times": "3"}) == {"label": "a", "times": 3}
    with pytest.raises(ValidationFailed) as missing:
        spec.validate_params({})
    assert set(missing.value.errors) == {"label"}
    with pytest.raises(ValidationFailed) as extra:
        spec.validate_params({"label": "a", "bogus": 1})
    assert set(extra.value.errors) == {"bogus"}


def test_undecorated_function_is_reachable_for_direct_calls():
    counter = Counter()
    Counter.increment.fn(counter, 4)
    assert counter.count == 4


# --- action expressions ------------------------------------------------------------------


def _query(expression: str) -> dict[str, list[str]]:
    url = expression.split("'")[1]
    return parse_qs(urlsplit(url).query)


def test_class_level_call_without_arguments():
    assert Counter.increment() == "@post('/counter/increment')"
    assert str(Counter.increment) == "@post('/counter/increment')"


def test_class_level_call_with_literal_arguments():
    assert Counter.increment(5) == "@post('/counter/increment?amount=5')"
    assert Counter.increment(amount=-2) == "@post('/counter/increment?amount=-2')"


def test_string_arguments_are_json_encoded_and_url_quoted():
    expression = Counter.rename("it's <b>&", times=2)
    assert expression.startswith("@post('/counter/rename?")
    # a quote would end the JS string literal: it must be percent-encoded
    assert expression.count("'") == 2
    assert _query(expression) == {"label": ['"it\'s <b>&"'], "times": ["2"]}


def test_signal_argument_is_sent_as_the_signal_value():
    expression = Counter.increment(Counter.sig.count)
    assert expression == (
        "@post(`/counter/increment?amount=${encodeURIComponent(JSON.stringify($counter.count))}`)"
    )


def test_signal_and_literal_arguments_mix():
    expression = Counter.rename(Counter.sig.label, times=3)
    assert expression == (
        "@post(`/counter/rename?times=3&label=${encodeURIComponent(JSON.stringify($counter.label))}`)"
    )


def test_instance_call_on_session_entity_carries_no_key():
    assert Counter().increment(2) == "@post('/counter/increment?amount=2')"


def test_instance_call_on_keyed_entity_carries_its_key():
    class Product(Entity):
        model_config = {"scope": "id", "namespace": "unit_product"}
        stock: int = 0

        @event
        def adjust(self, delta: int):
            self.stock += delta

    product = Product()
    product._sm_key = "p-17"
    assert _query(product.adjust(-1)) == {"_key": ["p-17"], "delta": ["-1"]}


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((1, 2), {}),
        ((), {"amout": 1}),
    ],
)
def test_bad_arguments_raise_type_error(args, kwargs):
    with pytest.raises(TypeError):
        Counter.increment(*args, **kwargs)


def test_argument_given_twice_raises_type_error():
    with pytest.raises(TypeError, match="twice"):
        Counter.rename("a", label="b")


# --- signal references -------------------------------------------------------------------


def test_signal_reference_names_the_namespaced_signal():
    ref = Counter.sig.count
    assert ref == "$counter.count"
    assert isinstance(ref, SignalRef)
    assert ref.path == "counter.count"
    assert Counter.sig["label"] == "$counter.label"
    assert Counter.sig._errors == "$counter._errors"


def test_unknown_signal_raises_attribute_error():
    with pytest.raises(AttributeError, match="coutn"):
        Counter.sig.coutn  # noqa: B018


def test_signal_names_are_listed():
    assert list(Counter.sig) == ["count", "label"]
