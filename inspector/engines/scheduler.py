"""Round-robin scheduling of batches over TensorRT execution contexts, results in order.

Pure Python (no CUDA): which context takes the next batch, which result to collect next,
so the copy in of one batch, the compute of another and the copy out of a third overlap
while results still come back in submission order.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Ticket:
    """A submitted batch: its place in submission order and the context running it."""

    seq: int
    context: int


class SchedulerFull(RuntimeError):
    """Every context is busy: collect the oldest ticket before submitting another."""


class StreamScheduler:
    """Round-robin assignment of batches to execution contexts, results in submission order.

    Each context has its own stream and buffers, so up to ``contexts`` batches
    are in flight: one copied in while another computes and a third is copied
    out. Round robin means the context a new batch needs is always the one that
    has been busy longest, i.e. the holder of the oldest ticket, so "collect the
    oldest first" both keeps results in order and frees the next context.
    Single-threaded, like the inference thread that owns it.
    """

    def __init__(self, contexts: int) -> None:
        if contexts < 1:
            raise ValueError(f"contexts must be >= 1, got {contexts}")
        self._contexts = contexts
        self._next_seq = 0
        self._pending: deque[Ticket] = deque()
        self._busy = [False] * contexts

    @property
    def contexts(self) -> int:
        return self._contexts

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    @property
    def full(self) -> bool:
        return self.busy(self.next_context)

    @property
    def next_context(self) -> int:
        """The context the next :meth:`submit` will use."""
        return self._next_seq % self._contexts

    def busy(self, context: int) -> bool:
        return self._busy[context]

    def submit(self) -> Ticket:
        """Take the next context in turn; :class:`SchedulerFull` when it is still busy."""
        context = self.next_context
        if self._busy[context]:
            raise SchedulerFull(
                f"all {self._contexts} context(s) are busy: collect ticket "
                f"{self._pending[0].seq} before submitting another batch"
            )
        ticket = Ticket(self._next_seq, context)
        self._next_seq += 1
        self._busy[context] = True
        self._pending.append(ticket)
        return ticket

    def next_to_collect(self) -> Ticket | None:
        """The oldest ticket in flight, whose result must be collected next."""
        return self._pending[0] if self._pending else None

    def check_next(self, ticket: Ticket) -> None:
        """Raise ValueError unless ``ticket`` is the one to collect now."""
        oldest = self.next_to_collect()
        if oldest is None:
            raise ValueError(f"ticket {ticket.seq} is not in flight (nothing is)")
        if ticket != oldest:
            raise ValueError(
                f"ticket {ticket.seq} collected out of order: ticket {oldest.seq} is older "
                "(results come back in submission order)"
            )

    def complete(self, ticket: Ticket) -> None:
        """Mark ``ticket`` collected and free its context; only the oldest may be completed."""
        self.check_next(ticket)
        self._pending.popleft()
        self._busy[ticket.context] = False

    def retract(self, ticket: Ticket) -> None:
        """Undo the latest :meth:`submit` (its launch failed), so its context is not lost."""
        if not self._pending or self._pending[-1] != ticket:
            raise ValueError(f"ticket {ticket.seq} is not the latest submitted")
        self._pending.pop()
        self._busy[ticket.context] = False
        self._next_seq -= 1
