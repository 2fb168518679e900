"""Schema changes for issue 16 (a hub of thousands of repositories).

- PostgreSQL: drop the second (``varchar_pattern_ops``, ``*_like``) index Django
  makes for every indexed varchar column. On MuseHub's tables they are all on
  id columns (content ids, repository and branch ids, the token hash), which
  are matched exactly or by prefix through a range on the plain btree index
  (``repos.admin.id_prefix_range``), never with ``LIKE``: at 2,000
  repositories they cost ~260 MB and no query used them.
- Indexes for listing by time (the admin lists commits, objects and snapshots
  newest first) and for ``musehub_fsck --since``.
- PostgreSQL: trigram indexes (``pg_trgm``) so the admin's text search of
  commit messages and authors reads an index instead of the whole table. If
  the extension cannot be created (no privilege), the migration skips them and
  the admin limits text search to one repository.

Model state does not change (Django does not track ``_like`` indexes, and the
new indexes are plain SQL), so ``makemigrations --check`` stays clean.
"""

from django.db import migrations, transaction

TIME_INDEXES = [
    ("musehub_commits_timestamp", "musehub_commits", "timestamp"),
    ("musehub_objects_created_at", "musehub_objects", "created_at"),
    ("musehub_snapshots_created_at", "musehub_snapshots", "created_at"),
]
TRIGRAM_INDEXES = [
    ("musehub_commits_message_trgm", "musehub_commits", "message"),
    ("musehub_commits_author_trgm", "musehub_commits", "author"),
]


def _like_indexes(cursor) -> list[str]:
    cursor.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
        " AND tablename LIKE 'musehub\\_%%' AND indexname LIKE '%%\\_like' AND indexdef LIKE '%%pattern_ops)'"
    )
    return [row[0] for row in cursor.fetchall()]


def forwards(apps, schema_editor):
    connection = schema_editor.connection
    quote = schema_editor.quote_name
    for name, table, column in TIME_INDEXES:
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {quote(name)} ON {quote(table)} ({quote(column)})")
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for name in _like_indexes(cursor):
            schema_editor.execute(f"DROP INDEX IF EXISTS {quote(name)}")
    try:
        with transaction.atomic(using=connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except Exception:  # noqa: BLE001 - no privilege to create it: text search stays limited to one repository
        return
    for name, table, column in TRIGRAM_INDEXES:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {quote(name)} ON {quote(table)} USING gin (UPPER({quote(column)}) gin_trgm_ops)"
        )


def backwards(apps, schema_editor):
    connection = schema_editor.connection
    quote = schema_editor.quote_name
    for name, _table, _column in TIME_INDEXES + TRIGRAM_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {quote(name)}")
    if connection.vendor != "postgresql":
        return
    for model in apps.get_app_config("repos").get_models():
        for field in model._meta.local_fields:
            sql = schema_editor._create_like_index_sql(model, field)
            if sql is not None:
                schema_editor.execute(str(sql).replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1))


class Migration(migrations.Migration):
    dependencies = [("repos", "0008_self_service")]

    operations = [migrations.RunPython(forwards, backwards)]
