"""``@event(rate=...)``: the forms a rate may take, and bad ones refused when the class is
defined, naming the event."""

from __future__ import annotations

import pytest

from starmodel import ConfigurationError, Entity, event
from starmodel.core.rates import Rate, parse_rate


@pytest.mark.parametrize(
    "text, expected",
    [
        ("10/minute", Rate(10, 60)),
        ("1/second", Rate(1, 1)),
        ("500/hour", Rate(500, 3600)),
        (" 5 / minutes ", Rate(5, 60)),
    ],
)
def test_rates_that_read_well_are_understood(text, expected):
    assert parse_rate(text) == expected


def test_a_rate_prints_as_written():
    assert str(parse_rate("10/minute")) == "10/minute"


@pytest.mark.parametrize("text", ["", "10", "0/minute", "-1/minute", "10/fortnight", "ten/minute",
                                  "10/minute/2", "1.5/second", "10 per minute", "9999999999/hour"])
def test_bad_rates_are_refused(text):
    with pytest.raises(ConfigurationError, match="rate must look like '10/minute'"):
        parse_rate(text)


def test_a_bad_rate_is_refused_when_the_class_is_defined():
    with pytest.raises(ConfigurationError, match=r"@event vote: rate must look like .* not '10/fortnight'"):

        class Ballot(Entity):
            votes: int = 0

            @event(rate="10/fortnight")
            def vote(self):
                self.votes += 1


def test_a_rate_must_be_text():
    with pytest.raises(ConfigurationError, match="not 10"):
        event(rate=10)(lambda self: None)  # type: ignore[arg-type]


def test_the_event_keeps_its_rate():
    class Survey(Entity):
        answers: int = 0

        @event(rate="2/second")
        def answer(self):
            self.answers += 1

        @event
        def skip(self):
            pass

    assert Survey.events()["answer"].rate == Rate(2, 1)
    assert Survey.events()["skip"].rate is None
