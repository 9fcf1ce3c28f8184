"""compare_tables on hand-made summaries, tables_equal against a real PostgreSQL."""

import psycopg
import pytest

from shakedown.checkers import TableSummary, compare_tables, table_summary, tables_equal
from shakedown.environment import Environment
from shakedown.services import PostgresService


def summary(rows: dict[str, str], name: str = "public.t") -> dict[str, TableSummary]:
    checksum = str(sorted(rows.values()))
    return {name: TableSummary(name, len(rows), checksum, ("id",), rows)}


def test_equal_summaries_are_valid() -> None:
    result = compare_tables(summary({"[1]": "h1"}), summary({"[1]": "h1"}))
    assert result.validity == "valid"


def test_differences_are_located_by_key() -> None:
    a = summary({"[1]": "h1", "[2]": "h2", "[3]": "h3"})
    b = summary({"[1]": "h1", "[2]": "changed", "[4]": "h4"})
    result = compare_tables(a, b, names=("source", "target"))
    assert result.validity == "invalid"
    assert "public.t: 3 rows in source, 3 in target, same count but different content" in (
        result.explanation
    )
    assert "only in source: '[3]'; only in target: '[4]'; changed: '[2]'" in result.explanation


def test_a_missing_table_is_invalid() -> None:
    result = compare_tables(summary({}), {})
    assert result.validity == "invalid"
    assert "public.t: missing in b" in result.explanation


def test_no_tables_is_unknown() -> None:
    assert compare_tables({}, {}).validity == "unknown"


def test_summaries_round_trip_through_dicts() -> None:
    table = summary({"[1]": "h1"})["public.t"]
    assert TableSummary.from_dict(table.to_dict()) == table


def create_tables(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, name text, balance int)")
        conn.execute(
            "INSERT INTO accounts SELECT n, 'name ' || n, n * 10 FROM generate_series(1, 50) n"
        )
        conn.execute("CREATE TABLE events (body text)")  # no primary key
        conn.execute("INSERT INTO events VALUES ('a'), ('b'), ('b')")


@pytest.fixture
def two_databases(pg_env: Environment) -> tuple[str, str]:
    source = pg_env["source"]
    assert isinstance(source, PostgresService)
    urls = source.url_for("a"), source.url_for("b")
    for url in urls:
        create_tables(url)
    return urls


def execute(url: str, *statements: str) -> None:
    with psycopg.connect(url) as conn:
        for statement in statements:
            conn.execute(statement)


def test_identical_databases_are_equal(two_databases: tuple[str, str]) -> None:
    a, b = two_databases
    # the same rows inserted in another order are still equal
    execute(b, "DELETE FROM accounts WHERE id = 7", "INSERT INTO accounts VALUES (7, 'name 7', 70)")
    result = tables_equal(a, b)
    assert result.validity == "valid", result.explanation
    assert result.counts["tables"] == 2


def test_differing_rows_are_named_by_primary_key(two_databases: tuple[str, str]) -> None:
    a, b = two_databases
    execute(
        b,
        "DELETE FROM accounts WHERE id = 3",
        "UPDATE accounts SET balance = 0 WHERE id = 5",
        "INSERT INTO accounts VALUES (99, 'new', 1)",
    )
    result = tables_equal(a, b)
    assert result.validity == "invalid"
    assert "public.accounts: 50 rows in a, 50 in b, same count but different content" in (
        result.explanation
    )
    assert "only in a: '[3]'; only in b: '[99]'; changed: '[5]'" in result.explanation
    assert "events" not in result.explanation


def test_a_table_without_primary_key_is_compared_by_rows(two_databases: tuple[str, str]) -> None:
    a, b = two_databases
    execute(
        b, "DELETE FROM events WHERE ctid IN (SELECT ctid FROM events WHERE body = 'b' LIMIT 1)"
    )
    result = tables_equal(a, b, tables=["events"])
    assert result.validity == "invalid"
    assert "public.events: 3 rows in a, 2 in b" in result.explanation


def test_a_table_missing_on_one_side(two_databases: tuple[str, str]) -> None:
    a, b = two_databases
    execute(b, "DROP TABLE events")
    result = tables_equal(a, b)
    assert result.validity == "invalid"
    assert "public.events: missing in b" in result.explanation


def test_summary_counts_rows_and_keys(two_databases: tuple[str, str]) -> None:
    summaries = table_summary(two_databases[0], ["accounts"])
    accounts = summaries["public.accounts"]
    assert accounts.row_count == 50
    assert accounts.key_columns == ("id",)
    assert accounts.row_hashes is not None and "[1]" in accounts.row_hashes


def test_services_of_an_environment_compare_by_their_urls(pg_env: Environment) -> None:
    create_tables(pg_env["source"].url)
    create_tables(pg_env["target"].url)
    assert tables_equal(pg_env["source"], pg_env["target"]).validity == "valid"
    execute(pg_env["target"].url, "UPDATE accounts SET name = 'x' WHERE id = 42")
    result = tables_equal(pg_env["source"], pg_env["target"])
    assert result.validity == "invalid"
    assert "changed: '[42]'" in result.explanation
    assert pg_env["source"].password not in result.explanation  # type: ignore[attr-defined]


def test_an_unreachable_database_is_unknown(pg_env: Environment) -> None:
    source = pg_env["source"]
    assert isinstance(source, PostgresService)
    result = tables_equal(source.url, source.url_for("no_such_database"))
    assert result.validity == "unknown"
    assert "no_such_database" in result.explanation
