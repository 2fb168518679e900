"""Schema changes for issue 13 (self-service repositories)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("repos", "0007_releases_and_tags")]

    operations = []
