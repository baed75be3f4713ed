"""The driving side: what turns the outside world's requests into calls of the application
(the web adapter, Datastar answers, live streams, the generated UI).

Nothing here imports a store, the bus or migrations (``starmodel.adapters.driven``): those are
reached through the ports, the application layer and the composition root (``bootstrap``).
"""
