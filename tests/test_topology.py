"""Topology loading: every bad input gets one clear message naming the file and key path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from shakedown.errors import TopologyError
from shakedown.topology import expand_with, load_topology, parse_duration, parse_target

GOOD = """
[services.source]
kind = "postgres"
databases = ["app"]

[services.cache]
kind = "redis"

[services.api]
kind = "process"
command = ["python3", "-m", "http.server", "{port}"]
env = { DATABASE_URL = "{source.url}", REDIS_URL = "{cache.url}" }
ready = { http = "/" }
depends_on = ["source"]

[targets]
"api.ready" = "< 5s"
"""


def error_of(write_topology: Callable[..., Path], text: str) -> str:
    path = write_topology(text)
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    message = str(info.value)
    assert str(path) in message, "the message must name the file"
    return message


def test_good_topology_loads_in_dependency_order(write_topology: Callable[..., Path]) -> None:
    topology = load_topology(write_topology(GOOD))
    assert list(topology.services) == ["source", "cache", "api"]
    order = topology.start_order()
    assert order.index("api") > order.index("source")
    assert order.index("api") > order.index("cache")  # implied by the {cache.url} reference
    assert topology.dependencies("api") == {"source", "cache"}
    assert topology.targets["api.ready"].seconds == 5.0


def test_digest_ignores_layout(write_topology: Callable[..., Path], tmp_path: Path) -> None:
    first = load_topology(write_topology(GOOD))
    second = load_topology(write_topology("\n\n# comment\n" + GOOD, name="other.toml"))
    assert first.digest() == second.digest()
    changed = load_topology(write_topology(GOOD.replace('"app"', '"app2"'), name="x.toml"))
    assert changed.digest() != first.digest()


def test_unknown_key_suggests_the_close_one(write_topology: Callable[..., Path]) -> None:
    message = error_of(write_topology, GOOD.replace('databases = ["app"]', 'databses = ["app"]'))
    assert "services.source.databses: unknown key 'databses'" in message
    assert "did you mean 'databases'?" in message


def test_unknown_nested_key(write_topology: Callable[..., Path]) -> None:
    message = error_of(write_topology, GOOD.replace('{ http = "/" }', '{ htp = "/" }'))
    assert "services.api.ready.htp: unknown key 'htp'" in message
    assert "did you mean 'http'?" in message


def test_unknown_kind(write_topology: Callable[..., Path]) -> None:
    message = error_of(write_topology, GOOD.replace('kind = "redis"', 'kind = "rediss"'))
    assert "services.cache.kind: unknown kind 'rediss'" in message
    assert "did you mean 'redis'?" in message


def test_missing_kind(write_topology: Callable[..., Path]) -> None:
    message = error_of(write_topology, GOOD.replace('kind = "redis"', 'port = 1'))
    assert "services.cache: missing key 'kind'" in message


def test_bad_type(write_topology: Callable[..., Path]) -> None:
    message = error_of(write_topology, GOOD.replace('databases = ["app"]', 'databases = "app"'))
    assert "services.source.databases: Input should be a list" in message


def test_bad_port(write_topology: Callable[..., Path]) -> None:
    message = error_of(write_topology, GOOD.replace('kind = "redis"', 'kind = "redis"\nport = 0'))
    assert "services.cache.port" in message


def test_reference_to_missing_service(write_topology: Callable[..., Path]) -> None:
    message = error_of(write_topology, GOOD.replace("{cache.url}", "{cach.url}"))
    assert "no service named 'cach'" in message
    assert "did you mean 'cache'?" in message


def test_reference_to_unknown_attribute(write_topology: Callable[..., Path]) -> None:
    message = error_of(write_topology, GOOD.replace("{cache.url}", "{cache.uri}"))
    assert "has no attribute 'uri'" in message and "did you mean 'url'?" in message


def test_unknown_own_reference(write_topology: Callable[..., Path]) -> None:
    message = error_of(write_topology, GOOD.replace('"{port}"', '"{prot}"'))
    assert "unknown reference {prot}" in message and "did you mean 'port'?" in message


def test_depends_on_missing_service(write_topology: Callable[..., Path]) -> None:
    message = error_of(write_topology, GOOD.replace('depends_on = ["source"]',
                                                    'depends_on = ["sourc"]'))
    assert "services.api.depends_on: no service named 'sourc'" in message


def test_dependency_cycle(write_topology: Callable[..., Path]) -> None:
    text = GOOD + """
[services.a]
kind = "process"
command = ["true"]
depends_on = ["b"]

[services.b]
kind = "process"
command = ["true"]
env = { X = "{a.port}" }
"""
    message = error_of(write_topology, text)
    assert "dependency cycle: a -> b -> a" in message


def test_replica_of_must_be_postgres(write_topology: Callable[..., Path]) -> None:
    message = error_of(write_topology, GOOD + '[services.r]\nkind = "postgres"\n'
                       'replica_of = "cache"\n')
    assert "services.r.replica_of" in message and "not postgres" in message


def test_bad_target(write_topology: Callable[..., Path]) -> None:
    message = error_of(write_topology, GOOD.replace('"< 5s"', '"5 sec"'))
    assert 'targets.api.ready' in message and "not a target" in message


def test_readiness_needs_exactly_one_strategy(write_topology: Callable[..., Path]) -> None:
    message = error_of(write_topology, GOOD.replace('{ http = "/" }',
                                                    '{ http = "/", tcp = true }'))
    assert "services.api.ready" in message and "exactly one" in message


def test_toml_syntax_error(write_topology: Callable[..., Path]) -> None:
    message = error_of(write_topology, GOOD + "\n[services.broken\n")
    assert "not valid TOML" in message and "line" in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="topology file not found"):
        load_topology(tmp_path / "nope.toml")


def test_link_to_missing_service(write_topology: Callable[..., Path]) -> None:
    message = error_of(write_topology, GOOD + '[links.x]\nfrom = "api"\nto = "db"\n')
    assert "links.x.to: no service named 'db'" in message


def test_overlay_replaces_a_service_whose_kind_changes(
    write_topology: Callable[..., Path],
) -> None:
    base = write_topology(GOOD)
    overlay = write_topology('[services.cache]\nkind = "process"\ncommand = ["x"]\n'
                             '[services.source]\ndatabases = ["other"]\n', name="overlay.toml")
    topology = load_topology([base, overlay])
    assert topology.services["cache"].kind == "process"
    assert topology.services["source"].databases == ("other",)  # type: ignore[attr-defined]


def test_expand_references_and_escapes() -> None:
    text = "--port {port} --db {source.url} {{literal}}"
    out = expand_with(text, {"port": "5"}, {"source": {"url": "postgresql://x"}})
    assert out == "--port 5 --db postgresql://x {literal}"


@pytest.mark.parametrize(("text", "seconds"), [("200ms", 0.2), ("1.5s", 1.5), ("2m", 120),
                                               (3, 3.0), ("250us", 0.00025)])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_targets() -> None:
    target = parse_target("<= 300ms")
    assert target.met_by(0.3) and not target.met_by(0.31)
    assert not parse_target("< 5s").met_by(5.0)
