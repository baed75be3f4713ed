"""The composition root: settings -> stores, bus, unit-of-work factory, dispatcher, web app.

- ``services``: ``build_services(settings)``, the stores, bus and dispatcher an app runs on.
- ``app``: ``StarModel``, the facade that holds the parts and offers them to the app's code.
"""

from starmodel.bootstrap.app import StarModel
from starmodel.bootstrap.services import Services, build_services, development_secret

__all__ = ["Services", "StarModel", "build_services", "development_secret"]
