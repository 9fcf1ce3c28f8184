"""stale_reads on hand-built histories: fresh and stale reads, reads concurrent with a write,
versions never written, writes with an unknown outcome, and no reads at all."""

from shakedown.checkers import stale_reads
from shakedown.history import History

W, R = "cache-write", "cache-read"


def write(h: History, process: int, key: str, version: int, outcome: str = "ok") -> None:
    h.append(process, "invoke", W, {"key": key})
    h.append(process, outcome, W, {"key": key, "version": version})  # type: ignore[arg-type]


def read(h: History, process: int, key: str, version: int | None) -> None:
    h.append(process, "invoke", R, {"key": key})
    h.append(process, "ok", R, {"key": key, "version": version})


def test_reads_of_the_newest_acknowledged_version_are_valid() -> None:
    h = History()
    write(h, 0, "a", 1)
    read(h, 1, "a", 1)
    write(h, 0, "a", 2)
    read(h, 1, "a", 2)
    read(h, 1, "b", None)  # never written: absent is right
    result = stale_reads(h)
    assert result.validity == "valid", result
    assert result.counts == {"reads": 3, "writes": 2, "stale": 0, "unexpected": 0}


def test_a_read_older_than_an_acknowledged_write_is_stale() -> None:
    h = History()
    write(h, 0, "a", 1)
    write(h, 0, "a", 2)
    read(h, 1, "a", 1)
    read(h, 1, "a", None)
    result = stale_reads(h)
    assert result.validity == "invalid"
    assert result.counts["stale"] == 2
    assert "2 stale read(s): 'a': read 1" in result.explanation
    assert "version 2 was acknowledged before" in result.explanation
    assert result.details["stale"][0]["returned"] == 1


def test_a_read_concurrent_with_a_write_may_return_either_version() -> None:
    h = History()
    write(h, 0, "a", 1)
    h.append(0, "invoke", W, {"key": "a"})
    read(h, 1, "a", 1)  # began before the write was acknowledged: the old version is fine
    read(h, 2, "a", 2)  # the new version, before its acknowledgement: fine too
    h.append(0, "ok", W, {"key": "a", "version": 2})
    assert stale_reads(h).validity == "valid"
    read(h, 1, "a", 1)  # began after: stale
    assert stale_reads(h).counts["stale"] == 1


def test_a_version_no_write_produced_is_unexpected_unless_a_write_is_in_doubt() -> None:
    h = History()
    write(h, 0, "a", 1)
    read(h, 1, "a", 7)
    result = stale_reads(h)
    assert result.validity == "invalid" and result.counts["unexpected"] == 1
    assert "read(s) of a version never written: 'a': 7" in result.explanation
    h.append(0, "invoke", W, {"key": "a"})  # never completed: it may have written 7
    assert stale_reads(h).validity == "valid"


def test_initial_versions_count_as_written_and_acknowledged() -> None:
    h = History()
    read(h, 0, "a", 3)
    assert stale_reads(h, initial={"a": 3}).validity == "valid"
    h2 = History()
    read(h2, 0, "a", 2)
    assert stale_reads(h2, initial={"a": 3}).counts == {
        "reads": 1, "writes": 0, "stale": 1, "unexpected": 1}


def test_no_read_is_unknown() -> None:
    h = History()
    write(h, 0, "a", 1)
    assert stale_reads(h).validity == "unknown"
