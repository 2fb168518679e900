"""Schema changes for issue 14 (big trees)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("repos", "0009_scale")]

    operations = []
