"""Sinks: where results leave the daemon, each behind :class:`~inspector.sinks.base.Sink`.

The fan-out gives every sink every result on its own thread; see ``fanout.py``.
"""

from inspector.sinks.base import Sink
from inspector.sinks.fanout import FanOut
from inspector.types.results import FrameResult, SinkHealth

__all__ = ["FanOut", "FrameResult", "Sink", "SinkHealth"]
