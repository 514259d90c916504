"""Sparkplug B 3.0 for SCADA hosts (Ignition, HiveMQ Edge): the ``sparkplug`` sink plugin.

Installed as its own distribution, found by the daemon through the ``inspector.sinks`` entry
point; the daemon names nothing of it.
"""

from __future__ import annotations

from inspector.sinks.registry import SinkPlugin
from inspector_sparkplug.settings import SparkplugSettings
from inspector_sparkplug.sink import SparkplugSink

__all__ = ["PLUGIN", "SparkplugSettings", "SparkplugSink"]

PLUGIN = SinkPlugin("sparkplug", SparkplugSettings, SparkplugSink.open)
