"""Which connections a partition cuts on a link several sources share (a Patroni member's
inbound link, used by all its peers): a pure function of the link and the two groups."""

from __future__ import annotations

from shakedown.faults._faults import LinkRoute, _cut_sources

INTO_DB0 = LinkRoute("db0-in", "db1", "db0", peers=("db2",))


def test_every_source_across_cuts_the_whole_link() -> None:
    assert _cut_sources(INTO_DB0, {"db0"}, {"db1", "db2"}) == ()
    assert _cut_sources(INTO_DB0, {"db1", "db2"}, {"db0"}) == ()


def test_only_the_sources_across_are_cut() -> None:
    # majority {db0, db1} | minority {db2}: db1 keeps its connections into db0
    assert _cut_sources(INTO_DB0, {"db0", "db1"}, {"db2"}) == ("db2",)
    # db0 cut from db1 alone: db2, in neither group, keeps its connections
    assert _cut_sources(INTO_DB0, {"db0"}, {"db1"}) == ("db1",)


def test_a_link_with_one_source_is_cut_whole() -> None:
    assert _cut_sources(LinkRoute("db0-dcs", "db0", "dcs"), {"db0"}, {"dcs"}) == ()
