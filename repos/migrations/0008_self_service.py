"""Schema changes for issue 13 (self-service repositories).

Repository names become unique regardless of case (GitHub's rule: ``alice/MySongs``
and ``alice/mysongs`` are one repository; the stored spelling stays for display),
and a repository remembers the names it had before a rename or transfer.

Existing data may already hold two repositories whose names differ only in case;
the migration then stops before changing anything, naming them, so an operator
can rename or delete one first.
"""

from django.core.management.base import CommandError
from django.db import migrations, models
from django.db.models import Count
from django.db.models.functions import Lower


class CaseCollision(CommandError):
    """Two or more repositories have names that differ only in case (``migrate`` prints it without a traceback)."""


def refuse_case_collisions(apps, schema_editor):
    Repo = apps.get_model("repos", "Repo")
    keys = (
        Repo.objects.using(schema_editor.connection.alias)
        .annotate(lower_owner=Lower("owner"), lower_slug=Lower("slug"))
        .values("lower_owner", "lower_slug")
        .annotate(n=Count("repo_id"))
        .filter(n__gt=1)
        .order_by("lower_owner", "lower_slug")
    )
    groups = []
    for key in keys:
        names = (
            Repo.objects.using(schema_editor.connection.alias)
            .annotate(lower_owner=Lower("owner"), lower_slug=Lower("slug"))
            .filter(lower_owner=key["lower_owner"], lower_slug=key["lower_slug"])
            .order_by("owner", "slug")
        )
        groups.append(", ".join(f"{r.owner}/{r.slug} ({r.repo_id})" for r in names))
    if groups:
        listed = "\n  ".join(groups)
        raise CaseCollision(
            "Repository names become case-insensitive (alice/MySongs and alice/mysongs are one repository), "
            f"but these repositories differ only in case:\n  {listed}\n"
            "Nothing was changed. Rename or delete all but one of each group (with the hub's previous version, or "
            "in SQL: UPDATE musehub_repos SET slug = '<new name>' WHERE repo_id = '<id>'), then migrate again."
        )


class Migration(migrations.Migration):
    dependencies = [("repos", "0007_releases_and_tags")]

    operations = [
        migrations.RunPython(refuse_case_collisions, migrations.RunPython.noop),
        migrations.AddField(
            model_name="repo",
            name="former_names",
            field=models.TextField(
                blank=True,
                default="",
                help_text="Lower-cased owner/slug names this repository had before a rename or transfer, one per "
                "line (their old URLs answer where it went).",
            ),
        ),
        migrations.AddConstraint(
            model_name="repo",
            constraint=models.UniqueConstraint(Lower("owner"), Lower("slug"), name="musehub_repo_owner_slug_ci"),
        ),
        migrations.RemoveConstraint(model_name="repo", name="musehub_repo_owner_slug"),
    ]
