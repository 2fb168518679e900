"""WSGI entry point (gunicorn musehub.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "musehub.settings")
application = get_wsgi_application()
