"""Old path of :mod:`starmodel.adapters.driving.live.stream` (the live stream), kept so that
code written for it (a shutdown hook calling ``close_all_live_streams``) keeps working."""

from starmodel.adapters.driving.live.stream import LiveHub, LiveStream, close_all_live_streams

__all__ = ["LiveHub", "LiveStream", "close_all_live_streams"]
