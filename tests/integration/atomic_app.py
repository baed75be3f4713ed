"""The app of the two-process atomic-event test (``starmodel run tests/integration/atomic_app.py``):
SQL counters whose event also changes a counter in Redis. Its settings come from the
environment the test gives it (``DATABASE_URL``, ``REDIS_URL``, ``STARMODEL_REDIS_PREFIX``...).
"""

from __future__ import annotations

from atomic_entities import RedisShared, SqlCounter

from starmodel import StarModel

sm = StarModel(entities=[SqlCounter, RedisShared], title="Atomic events")
app = sm.app
