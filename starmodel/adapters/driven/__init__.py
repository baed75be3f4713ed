"""The driven side: what the application calls out to (stores, the bus, migrations, plugin
discovery, the circuit breaker they share).

Nothing here imports the driving side (``starmodel.adapters.driving``): a store never knows
about the web.
"""
