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
    concurrently = " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(
        f"CREATE INDEX{concurrently} IF NOT EXISTS {quote(NAME)} ON {quote('musehub_objects')} "
        f"({quote('object_id')}) WHERE {quote('content_cache')} IS NOT NULL"
    )


def backwards(apps, schema_editor):
    schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(NAME)}")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("repos", "0013_mpack_damaged_at")]

    operations = [migrations.RunPython(forwards, backwards)]
