"""Where entities are kept when several processes may serve the app (``app/placement.py``)."""

import pytest

from starmodel import ConfigurationError, Entity, StateStore
from starmodel.app.placement import kept_in, per_process_globals
from starmodel.app.settings import Settings


class Board(Entity):
    model_config = {"scope": "global", "namespace": "place_board"}


class Stats(Entity):
    model_config = {"scope": "global", "namespace": "place_stats", "per_process": True}


class Cart(Entity):
    model_config = {"namespace": "place_cart"}


class Tokens(Entity):
    model_config = {"scope": "global", "namespace": "place_tokens", "store": StateStore.SERVER_REDIS}


ALL = [Board, Stats, Cart, Tokens]
ONE_PROCESS = Settings()
WITH_REDIS = Settings(redis_url="redis://127.0.0.1:6379/0")


def test_a_global_memory_entity_is_kept_in_redis_when_redis_is_set() -> None:
    assert kept_in(Board, ONE_PROCESS) is StateStore.SERVER_MEMORY
    assert kept_in(Board, WITH_REDIS) is StateStore.SERVER_REDIS


def test_per_process_and_session_memory_entities_stay_in_memory() -> None:
    for settings in (ONE_PROCESS, WITH_REDIS):
        assert kept_in(Stats, settings) is StateStore.SERVER_MEMORY
        assert kept_in(Cart, settings) is StateStore.SERVER_MEMORY
        assert kept_in(Tokens, settings) is StateStore.SERVER_REDIS


def test_only_unmarked_global_memory_entities_without_redis_would_diverge() -> None:
    assert per_process_globals(ALL, ONE_PROCESS) == [Board]
    assert per_process_globals(ALL, WITH_REDIS) == []


def test_per_process_is_refused_where_it_means_nothing() -> None:
    with pytest.raises(ConfigurationError, match="per_process applies to global SERVER_MEMORY"):
        type("Wrong", (Entity,), {"model_config": {"per_process": True, "namespace": "place_wrong"},
                                  "__module__": __name__})
    with pytest.raises(ConfigurationError, match="per_process must be True or False"):
        type("Odd", (Entity,), {"model_config": {"scope": "global", "per_process": "yes",
                                                 "namespace": "place_odd"}, "__module__": __name__})
