"""The base of every configuration section, and of every sink's section.

At the bottom of the package: the configuration, the sink plugins and the publishing
layer all build on these, and import nothing else of the package through them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """One ``[section]`` of the configuration."""

    # A typo in a key must fail loudly, not be silently ignored on a line PC.
    model_config = ConfigDict(extra="forbid", frozen=True)


class SinkSettings(Section):
    """A sink's section, ``[name]``: off unless the configuration turns it on."""

    enabled: bool = False
