"""PostgreSQL: the admin's trigram indexes (migration 0009) take new rows directly, with no pending list.

A GIN index buffers new entries in a "pending list" (``fastupdate``) that every
search reads in full until a vacuum merges it. The planner prices that list,
so after a burst of pushes (or rolled-back inserts) it can judge a whole-table
scan of ``musehub_commits`` cheaper than the index, and the admin's text search
reads every commit of the hub. Commits arrive far more slowly than searches
are made, so each insert pays the (small) index update itself instead.
"""

from django.db import migrations

TRIGRAM_INDEXES = ["musehub_commits_message_trgm", "musehub_commits_author_trgm"]


def _set_fastupdate(schema_editor, value: str) -> None:
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname FROM pg_class WHERE relkind = 'i' AND relname = ANY(%s)", [TRIGRAM_INDEXES])
        present = [row[0] for row in cursor.fetchall()]  # absent where pg_trgm could not be created
        for name in present:
            cursor.execute(f"ALTER INDEX {schema_editor.quote_name(name)} SET (fastupdate = {value})")
            if value == "off":  # merge what is already pending: the list is read until it is empty
                cursor.execute("SELECT gin_clean_pending_list(%s::regclass)", [name])


def forwards(apps, schema_editor):
    _set_fastupdate(schema_editor, "off")


def backwards(apps, schema_editor):
    _set_fastupdate(schema_editor, "on")


class Migration(migrations.Migration):
    dependencies = [("repos", "0010_fast_big_trees")]

    operations = [migrations.RunPython(forwards, backwards)]
