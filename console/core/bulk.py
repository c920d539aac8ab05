"""Batched writes without the ORM's per-row work, for the hot paths (telemetry ingest, probe results).

``bulk_create`` and ``bulk_update`` build a model instance, then SQL text and parameters field by field,
for every row: at a thousand nodes that, not the database, is what the collector and the probes spend
their CPU on. These helpers take plain tuples of database-ready values instead:

* :func:`insert_rows`: ``COPY ... FROM STDIN`` on PostgreSQL (psycopg 3), one ``executemany`` of a
  prepared INSERT elsewhere (SQLite);
* :func:`update_rows`: one ``UPDATE ... FROM (VALUES ...)`` for many rows, each with its own values
  (PostgreSQL, and SQLite from 3.33).

Both run on the current connection, inside the caller's transaction. Columns are named by attribute
(``node_id``, ``utilization_percent``); values are what the column stores (numbers, strings, None,
datetimes; JSON as Python data for a JSONField), never user text spliced into SQL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime

from django.db import connections, models

UPDATE_CHUNK = 500  # rows per UPDATE statement: SQLite allows 32766 parameters in one statement


def _json_value(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a column value")


def _column(model: type[models.Model], name: str) -> models.Field:
    return model._meta.get_field(name)


def insert_rows(model: type[models.Model], columns: Sequence[str], rows: Sequence[Sequence],
                using: str = "default") -> int:
    """Insert ``rows`` (tuples in the order of ``columns``) into ``model``'s table; returns how many."""
    if not rows:
        return 0
    connection = connections[using]
    fields = [_column(model, name) for name in columns]
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    names = ", ".join(qn(field.column) for field in fields)
    with connection.cursor() as cursor:
        raw = getattr(cursor, "cursor", None)
        if connection.vendor == "postgresql" and hasattr(raw, "copy"):
            with raw.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(fields))})",
                               [tuple(row) for row in rows])
    return len(rows)


def update_rows(model: type[models.Model], columns: Sequence[str], rows: Sequence[Sequence],
                using: str = "default", *, guard: Sequence[str] = (), returning: bool = False) -> int | list:
    """Set ``columns`` of many rows of ``model`` in one statement per ``UPDATE_CHUNK`` rows.

    Each row is ``(pk, value, value, ...)`` in the order of ``columns``, then one value per ``guard`` column:
    a row is written only while its ``guard`` columns still hold those values (a conditional write, as a
    state machine's: ``guard=("status",)``). Returns how many rows matched, or with ``returning`` the
    primary keys of those that did.
    """
    if not rows:
        return [] if returning else 0
    connection = connections[using]
    qn = connection.ops.quote_name
    pk = model._meta.pk
    set_fields = [_column(model, name) for name in columns]
    fields = [pk, *set_fields, *[_column(model, name) for name in guard]]
    table = qn(model._meta.db_table)
    where = " AND ".join([f"{table}.{qn(pk.column)} = v.c0"] + [
        f"{table}.{qn(field.column)} = v.c{i}" for i, field in enumerate(fields[1 + len(set_fields):],
                                                                        1 + len(set_fields))])
    if connection.vendor == "postgresql":
        # The rows travel as one JSON parameter, typed by the record definition: one placeholder instead
        # of rows x columns, which psycopg would parse and quote one by one on the client.
        keys = [f"c{i}" for i in range(len(fields))]
        record = ", ".join(f"{key} {field.db_type(connection)}" for key, field in zip(keys, fields, strict=True))
        source = f"jsonb_to_recordset(%s::jsonb) AS v ({record})"

        def params(chunk):
            return [json.dumps([dict(zip(keys, row, strict=True)) for row in chunk], default=_json_value)]
    else:  # SQLite: a VALUES list, whose columns (column1, column2...) a subquery renames
        names = ", ".join(f"column{i + 1} AS c{i}" for i in range(len(fields)))
        placeholder = "(" + ", ".join(["%s"] * len(fields)) + ")"
        source = "(SELECT {names} FROM (VALUES {values})) AS v"

        def params(chunk):
            return [field.get_db_prep_value(value, connection, prepared=False)
                    for row in chunk for field, value in zip(fields, row, strict=True)]
    assignments = ", ".join(f"{qn(field.column)} = v.c{i}" for i, field in enumerate(set_fields, 1))
    tail = f" RETURNING {table}.{qn(pk.column)}" if returning else ""
    matched, pks = 0, []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), UPDATE_CHUNK):
            chunk = rows[start:start + UPDATE_CHUNK]
            sql_source = source if connection.vendor == "postgresql" else source.format(
                names=names, values=", ".join([placeholder] * len(chunk)))
            cursor.execute(f"UPDATE {table} SET {assignments} FROM {sql_source} WHERE {where}{tail}", params(chunk))
            if returning:
                pks += [row[0] for row in cursor.fetchall()]
            else:
                matched += cursor.rowcount
    return pks if returning else matched
