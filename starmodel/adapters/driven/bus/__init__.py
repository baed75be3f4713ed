"""The message bus over Redis (the in-process one is ``starmodel.app.bus``)."""
