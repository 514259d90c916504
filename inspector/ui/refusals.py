"""What the page's server turned away, by reason: counted for ``/metrics``, never logged one
by one (a flood of strangers would otherwise fill the journal, one line per refusal)."""

from __future__ import annotations

from typing import Literal

Reason = Literal[
    "capacity",  # a connection pushed out, or turned away, at ui.max_connections
    "per_client",  # one address over ui.max_pending_per_client connections without a request
    "header_timeout",  # no whole request head within ui.header_timeout_s of connecting
    "malformed",  # not HTTP (h11 answers 400)
    "unauthorised",  # no token (401)
    "streams",  # ui.max_pages live pages open already (503)
    "bad_request",  # a malformed path or parameter (400)
    "not_picture",  # an evidence path that is not a picture in the store (404)
    "error",  # the app failed (500, one log line)
]
REASONS: tuple[Reason, ...] = Reason.__args__  # type: ignore[attr-defined]


class Refusals:
    """Written on the server's loop thread only, read by the metrics thread: every reason is
    there from the start, so a read never sees the mapping change size."""

    def __init__(self) -> None:
        self._counts: dict[Reason, int] = dict.fromkeys(REASONS, 0)

    def add(self, reason: Reason) -> None:
        self._counts[reason] += 1

    def counts(self) -> dict[Reason, int]:
        return dict(self._counts)

    def __getitem__(self, reason: Reason) -> int:
        return self._counts[reason]
