"""Drop the ``repo_id`` index of the three ref tables: their unique (repo_id, ...) index serves every lookup by repo.

A push writes one ref row per commit, snapshot and blob (25,000 rows for a
25,000-file tree); each index it keeps up costs time on every push and space
on every hub. Only the index goes: the foreign key stays as it is (Django's
own ``AlterField`` would drop and re-add it, which on PostgreSQL re-checks
every row of the table under a lock).
"""

import django.db.models.deletion
from django.db import migrations, models

REF_TABLES = ["musehub_commit_refs", "musehub_snapshot_refs", "musehub_object_refs"]


def _repo_only_indexes(schema_editor, table: str) -> list[str]:
    with schema_editor.connection.cursor() as cursor:
        constraints = schema_editor.connection.introspection.get_constraints(cursor, table)
    return [
        name
        for name, details in constraints.items()
        if details["columns"] == ["repo_id"]
        and details["index"]
        and not details["unique"]
        and not details["primary_key"]
        and not details["foreign_key"]
    ]


def drop_indexes(apps, schema_editor):
    for table in REF_TABLES:
        for name in _repo_only_indexes(schema_editor, table):
            schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def create_indexes(apps, schema_editor):
    for table in REF_TABLES:
        if not _repo_only_indexes(schema_editor, table):
            name = schema_editor.quote_name(f"{table}_repo_id")
            schema_editor.execute(f"CREATE INDEX {name} ON {schema_editor.quote_name(table)} (repo_id)")


def _repo_field(related_name: str, *, db_index: bool) -> models.ForeignKey:
    return models.ForeignKey(
        db_index=db_index,
        on_delete=django.db.models.deletion.CASCADE,
        related_name=related_name,
        to="repos.repo",
    )


class Migration(migrations.Migration):
    dependencies = [("repos", "0011_trigram_without_pending_list")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_indexes, create_indexes)],
            state_operations=[
                migrations.AlterField(
                    model_name=model, name="repo", field=_repo_field(related_name, db_index=False)
                )
                for model, related_name in (
                    ("commitref", "commit_refs"),
                    ("objectref", "object_refs"),
                    ("snapshotref", "snapshot_refs"),
                )
            ],
        )
    ]
