"""The app of ``cross_process.py``: one global counter, kept in Redis when ``REDIS_URL`` is set
(so that every server process shares it), else in this process's memory."""

from __future__ import annotations

import os
from typing import Any

from starmodel import Entity, StarModel, StateStore, event

STORE = StateStore.SERVER_REDIS if os.environ.get("REDIS_URL") else StateStore.SERVER_MEMORY


class BenchShared(Entity):
    model_config = {"scope": "global", "store": STORE, "namespace": "bench_shared"}
    count: int = 0

    @event
    def increment(self) -> None:
        self.count += 1


def build_app() -> Any:
    return StarModel(entities=[BenchShared], title="cross-process bench").app
