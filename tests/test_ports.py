"""Port allocation within SHAKEDOWN_PORTS: ports come from the slice, a bad slice is refused
with what was read and how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest

from shakedown.errors import ShakedownError
from shakedown.process._ports import PORTS_VARIABLE, PortAllocator, port_range


def _allocator(root: Path, env_id: str) -> PortAllocator:
    """An allocator whose environment has a record (a lock without one is stale)."""
    (root / env_id).mkdir()
    (root / env_id / "env.json").write_text("{}")
    return PortAllocator(root, env_id)


def test_ports_come_from_the_configured_slice(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PORTS_VARIABLE, "30100-30119")
    allocator = _allocator(tmp_path, "env-a")
    taken = [allocator.allocate() for _ in range(10)]
    assert all(30100 <= port <= 30119 for port in taken)
    assert len(set(taken)) == 10
    allocator.release_all()
    assert not list((tmp_path / "ports").iterdir())


def test_an_exhausted_slice_says_what_it_tried(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PORTS_VARIABLE, "30200-30201")
    allocator = _allocator(tmp_path, "env-b")
    allocator.allocate(), allocator.allocate()
    with pytest.raises(ShakedownError) as caught:
        allocator.allocate()
    assert "2 random ports in 30200-30201" in str(caught.value.checked)


@pytest.mark.parametrize("text", ["", "  "])
def test_unset_means_the_default_range(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PORTS_VARIABLE, text)
    assert port_range() == range(20000, 32000)


@pytest.mark.parametrize("text", ["abc", "30000", "30010-30000", "80-90", "60000-70000",
                                  "1-2-3", "-", "30000-", "\x1b[31m-1"])
def test_a_bad_range_is_refused(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PORTS_VARIABLE, text)
    with pytest.raises(ShakedownError) as caught:
        port_range()
    assert PORTS_VARIABLE in caught.value.args[0] or PORTS_VARIABLE in str(caught.value)
    assert any("unset it" in fix for fix in caught.value.fix)
