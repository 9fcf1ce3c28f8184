"""Table comparison for PostgreSQL: ``table_summary`` reads a database (row count, an
order-independent checksum computed in SQL, and per-key row hashes to locate differences),
``compare_tables`` is the pure comparison of two summaries, ``tables_equal`` does both."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg import sql

from shakedown.checkers._result import Result, invalid, preview, unknown, valid

ROW = "shakedown_row"  # alias of the row variable in queries (a column could be named "t")
MAX_KEYED_ROWS = 100_000

_LIST_TABLES = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast|temp)'
ORDER BY 1, 2
"""
_KEY_COLUMNS = """
SELECT a.attname FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = %s::regclass AND i.indisprimary
ORDER BY array_position(i.indkey::int2[], a.attnum)
"""


class HasUrl(Protocol):
    """Anything with a connection URL, such as a service handle of an environment."""

    @property
    def url(self) -> str: ...


@dataclass(frozen=True)
class TableSummary:
    """What ``compare_tables`` needs to know about one table. ``row_hashes`` maps each row's
    primary-key values (a JSON array as text; for a table without primary key, the row's own
    hash) to the md5 of the row; it is None for tables over ``MAX_KEYED_ROWS`` rows."""

    name: str
    row_count: int
    checksum: str
    key_columns: tuple[str, ...]
    row_hashes: dict[str, str] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "row_count": self.row_count,
            "checksum": self.checksum,
            "key_columns": list(self.key_columns),
            "row_hashes": self.row_hashes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableSummary:
        hashes = data.get("row_hashes")
        return cls(
            str(data["name"]),
            int(data["row_count"]),
            str(data["checksum"]),
            tuple(data.get("key_columns") or ()),
            None if hashes is None else {str(k): str(v) for k, v in hashes.items()},
        )


DatabaseSummary = dict[str, TableSummary]


def table_summary(
    conninfo: str, tables: Iterable[str] | None = None, *, max_keyed_rows: int = MAX_KEYED_ROWS
) -> DatabaseSummary:
    """Summarize the user tables of a database (or the named ones: ``"t"`` means
    ``"public.t"``) in one repeatable-read snapshot. A named table that does not exist is
    left out, so ``compare_tables`` reports it as missing."""
    with psycopg.connect(conninfo, connect_timeout=5, autocommit=True) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        existing = [f"{s}.{t}" for s, t in conn.execute(_LIST_TABLES).fetchall()]
        wanted = existing if tables is None else [_qualified(t) for t in tables]
        summaries = {
            name: _summarize(conn, name, max_keyed_rows) for name in wanted if name in existing
        }
        conn.execute("COMMIT")
    return summaries


def _qualified(name: str) -> str:
    return name if "." in name else f"public.{name}"


def _identifier(name: str) -> sql.Identifier:
    schema, table = name.split(".", 1)
    return sql.Identifier(schema, table)


def _summarize(conn: psycopg.Connection[Any], name: str, max_keyed_rows: int) -> TableSummary:
    table = _identifier(name)
    count, checksum = _count_and_checksum(conn, table)
    keys = tuple(r[0] for r in conn.execute(_KEY_COLUMNS, (_quoted(name),)).fetchall())
    hashes = _row_hashes(conn, table, keys) if count <= max_keyed_rows else None
    return TableSummary(name, count, checksum, keys, hashes)


def _quoted(name: str) -> str:
    schema, table = name.split(".", 1)
    return '"{}"."{}"'.format(schema.replace('"', '""'), table.replace('"', '""'))


def _count_and_checksum(conn: psycopg.Connection[Any], table: sql.Identifier) -> tuple[int, str]:
    query = sql.SQL(
        "SELECT count(*), coalesce(sum(('x' || substr(md5({row}::text), 1, 16))"
        "::bit(64)::bigint::numeric), 0)::text FROM {table} AS {row}"
    ).format(row=sql.Identifier(ROW), table=table)
    row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def _row_hashes(
    conn: psycopg.Connection[Any], table: sql.Identifier, keys: tuple[str, ...]
) -> dict[str, str]:
    row = sql.Identifier(ROW)
    digest = sql.SQL("md5({}::text)").format(row)
    if not keys:
        query = sql.SQL("SELECT {digest} FROM {table} AS {row}").format(
            digest=digest, table=table, row=row
        )
        return _numbered_duplicates([r[0] for r in conn.execute(query).fetchall()])
    key = sql.SQL("json_build_array({})::text").format(
        sql.SQL(", ").join(sql.Identifier(ROW, k) for k in keys)
    )
    query = sql.SQL("SELECT {key}, {digest} FROM {table} AS {row}").format(
        key=key, digest=digest, table=table, row=row
    )
    return {str(k): str(h) for k, h in conn.execute(query).fetchall()}


def _numbered_duplicates(digests: list[str]) -> dict[str, str]:
    seen: dict[str, int] = {}
    hashes: dict[str, str] = {}
    for digest in sorted(digests):
        seen[digest] = seen.get(digest, 0) + 1
        hashes[f"row {digest} #{seen[digest]}"] = digest
    return hashes


def compare_tables(
    summary_a: Mapping[str, TableSummary],
    summary_b: Mapping[str, TableSummary],
    names: tuple[str, str] = ("a", "b"),
) -> Result:
    """Compare two database summaries: invalid when a table is missing on one side or its row
    count or checksum differs; the explanation names up to 10 differing keys per table."""
    tables = sorted(set(summary_a) | set(summary_b))
    differences = [d for t in tables if (d := _table_difference(t, summary_a, summary_b, names))]
    counts = {
        "tables": len(tables),
        "differing_tables": len(differences),
        "rows_" + names[0]: sum(s.row_count for s in summary_a.values()),
        "rows_" + names[1]: sum(s.row_count for s in summary_b.values()),
    }
    if differences:
        return invalid(
            f"{len(differences)} of {len(tables)} tables differ:\n" + "\n".join(differences),
            counts,
            differences=differences[:10],
        )
    if not tables:
        return unknown("no tables to compare", counts)
    return valid(f"{len(tables)} tables equal ({counts['rows_' + names[0]]} rows)", counts)


def _table_difference(
    table: str,
    summary_a: Mapping[str, TableSummary],
    summary_b: Mapping[str, TableSummary],
    names: tuple[str, str],
) -> str | None:
    a, b = summary_a.get(table), summary_b.get(table)
    if a is None or b is None:
        return f"{table}: missing in {names[0] if a is None else names[1]}"
    if a.row_count == b.row_count and a.checksum == b.checksum:
        return None
    text = f"{table}: {a.row_count} rows in {names[0]}, {b.row_count} in {names[1]}"
    if a.row_count == b.row_count:
        text += ", same count but different content"
    return text + _locate(a, b, names)


def _locate(a: TableSummary, b: TableSummary, names: tuple[str, str]) -> str:
    if a.row_hashes is None or b.row_hashes is None:
        return " (too many rows to locate the differing keys)"
    only_a = sorted(set(a.row_hashes) - set(b.row_hashes))
    only_b = sorted(set(b.row_hashes) - set(a.row_hashes))
    changed = sorted(
        k for k in set(a.row_hashes) & set(b.row_hashes) if a.row_hashes[k] != b.row_hashes[k]
    )
    parts = [
        f"only in {names[0]}: {preview(only_a)}" if only_a else "",
        f"only in {names[1]}: {preview(only_b)}" if only_b else "",
        f"changed: {preview(changed)}" if changed else "",
    ]
    return "; " + "; ".join(p for p in parts if p)


def tables_equal(a: str | HasUrl, b: str | HasUrl, tables: Iterable[str] | None = None) -> Result:
    """Summarize both databases and compare them. Unknown (with the error) when a database
    cannot be read."""
    wanted = None if tables is None else list(tables)
    try:
        summary_a = table_summary(_url(a), wanted)
        summary_b = table_summary(_url(b), wanted)
    except psycopg.Error as exc:
        return unknown(f"cannot read the databases to compare: {type(exc).__name__}: {exc}")
    return compare_tables(summary_a, summary_b)


def _url(target: str | HasUrl) -> str:
    return target if isinstance(target, str) else target.url
