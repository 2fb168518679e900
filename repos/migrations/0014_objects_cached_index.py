"""A partial index on the objects whose content the database holds (``content_cache IS NOT NULL``).

A fetch asks which of its blobs are cached before planning pack reads. The
content cache is off by default, so the index is usually empty: one probe of
it tells the planner that nothing is cached, and the query naming every blob
of a clone (25,000 ids) is not sent at all. Built concurrently on PostgreSQL
(writes to the objects table go on meanwhile). Plain SQL, as in 0009: the
model state does not change.
"""

from django.db import migrations

NAME = "musehub_objects_cached"


def forwards(apps, schema_editor):
    quote = schema_editor.quote_name
    postgresql = schema_editor.connection.vendor == "postgresql"
    concurrently = " CONCURRENTLY" if postgresql else ""
    if postgresql and _invalid(schema_editor.connection):  # a concurrent build that failed leaves one behind
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {quote(NAME)}")
    schema_editor.execute(
        f"CREATE INDEX{concurrently} IF NOT EXISTS {quote(NAME)} ON {quote('musehub_objects')} "
        f"({quote('object_id')}) WHERE {quote('content_cache')} IS NOT NULL"
    )


def _invalid(connection) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname = %s AND pg_table_is_visible(c.oid)",
            [NAME],
        )
        row = cursor.fetchone()
    return bool(row and row[0])


def backwards(apps, schema_editor):
    schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(NAME)}")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("repos", "0013_mpack_damaged_at")]

    operations = [migrations.RunPython(forwards, backwards)]
