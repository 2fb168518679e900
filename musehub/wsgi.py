"""WSGI entry point (gunicorn musehub.wsgi).

The URL configuration (every view, DRF, the admin) and the storage client
(on S3, botocore's service model: 0.1 s) are loaded before the first request,
so no user's request pays for them; then ``gc.freeze()`` moves everything
loaded so far out of the garbage collector's reach: those objects live as
long as the process, and a full collection no longer walks them in the middle
of a request that allocates a lot (a clone plans tens of thousands of index
rows; such a collection cost 0.1 s there). After each request, memory the
request freed goes back to the system once there is enough of it
(:mod:`musehub.memory`).
"""

import gc
import os

from django.conf import settings
from django.core.signals import request_finished
from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

from musehub import memory

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "musehub.settings")
application = get_wsgi_application()


def _warm() -> None:
    from repos.storage.backend import get_backend  # needs the apps loaded

    get_resolver().url_patterns  # noqa: B018 - imports every view now, not in the first request
    get_backend().warm()


_warm()
request_finished.connect(memory.Trimmer(settings.MUSEHUB_TRIM_AFTER_MB * 1024 * 1024).after_request, weak=False)
gc.collect()  # what start-up left behind is freed now, not frozen for the worker's life
gc.freeze()
