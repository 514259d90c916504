"""The durable outbox on its own: order, bounds and their policies, a full disk, reopening."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspector.errors import ConfigError
from inspector.publishing.outbox import Outbox


def test_events_come_back_oldest_first_and_survive_reopening(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", max_events=10)
    for i in range(3):
        assert outbox.put(f"e{i}", f"payload {i}".encode())
    outbox.put("e1", b"redelivered")  # the same event again is stored once
    outbox.remove("e0")
    outbox.close()
    reopened = Outbox(tmp_path / "o.sqlite", max_events=10)
    assert reopened.backlog() == [("e1", b"payload 1"), ("e2", b"payload 2")]
    assert len(reopened) == 2


@pytest.mark.parametrize(
    ("policy", "kept"), [("drop_oldest", ["e1", "e2"]), ("drop_newest", ["e0", "e1"])]
)
def test_a_full_outbox_follows_its_policy_and_counts(
    tmp_path: Path, policy: str, kept: list[str]
) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", max_events=2, when_full=policy)  # type: ignore[arg-type]
    results = [outbox.put(f"e{i}", b"x") for i in range(3)]
    assert [event_id for event_id, _ in outbox.backlog()] == kept
    assert outbox.dropped == 1 and len(outbox) == 2
    assert results[-1] is (policy == "drop_oldest")


def test_a_full_disk_is_counted_and_never_raises(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", max_events=100_000)
    # SQLite's own "database or disk is full" (SQLITE_FULL), reached by capping the file.
    outbox._db.execute("PRAGMA max_page_count = 8")
    stored = [outbox.put(f"e{i}", b"x" * 2000) for i in range(40)]
    assert stored[0] and not all(stored)
    assert outbox.write_errors == stored.count(False)
    assert len(outbox) == stored.count(True) == len(outbox.backlog())


def test_a_file_that_is_not_a_database_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(ConfigError, match=r"o\.sqlite: cannot open the outbox: "):
        Outbox(path, max_events=10)
