"""Schema changes for issue 14 (big trees)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("repos", "0009_scale")]

    operations = [
        migrations.AlterModelOptions(
            name="branch",
            options={"ordering": ["repo", "name"], "verbose_name_plural": "branches"},
        ),
        migrations.AddField(
            model_name="snapshot",
            name="parent_changes",
            field=models.BinaryField(
                blank=True,
                null=True,
                help_text="A checkpoint's note, zstd msgpack {parent, paths}: the paths it changes against its first "
                "parent's snapshot (a path's log reads this instead of two whole manifests).",
            ),
        ),
    ]
