"""line-inspector: a production-line camera inspection daemon."""

__version__ = "0.1.0"
