"""The base of every configuration section, and of every sink's section.

At the bottom of the package: the configuration, the sink plugins and the publishing
layer all build on these, and import nothing else of the package through them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """One ``[section]`` of the configuration."""

    # A typo in a key must fail loudly, not be silently ignored on a line PC.
    model_config = ConfigDict(extra="forbid", frozen=True)

    def resolve_paths(self, base: Path, state: StateFolder | None = None) -> Self:
        """Relative ``Path`` options taken from ``base``, the config file's folder. A section
        whose files have a default place overrides this to fill it in under ``state``."""
        update = {
            name: base / value
            for name, value in self
            if isinstance(value, Path) and not value.is_absolute()
        }
        return self.model_copy(update=update) if update else self


@dataclass(frozen=True, slots=True)
class StateFolder:
    """Where the daemon keeps its files: ``$STATE_DIRECTORY`` under systemd (one daemon per
    unit instance), else ``state/`` beside the config file with the line id in each name."""

    folder: Path
    prefix: str  # "" under systemd, "<line>-" in the shared state/ folder

    def place(self, name: str) -> Path:
        return self.folder / f"{self.prefix}{name}"


class SinkSettings(Section):
    """A sink's section, ``[name]``: off unless the configuration turns it on."""

    enabled: bool = False

    def pictures(self) -> Path | None:
        """The folder of pictures this sink keeps for other sinks to show (the evidence
        store's, which the operator's page serves); None for most sinks."""
        return None
