"""Schema changes for issue 16 (a hub of thousands of repositories)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("repos", "0008_self_service")]

    operations = []
