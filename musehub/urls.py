"""Top-level routes: health, metrics, admin, the REST API (``api/``), then the wire endpoints.

Every first path segment spelled here (or in an included map) is a reserved
owner name (``repos.access.reserved_owners`` reads them from this table). An
unmatched URL answers JSON (``hubhttp.errors.not_found``), in debug mode too.
"""

from django.contrib import admin
from django.urls import include, path, re_path

from api.views import WIRE_SUFFIXES, reserved_owner_route
from hubhttp.views import unmatched
from musehub.health import health, ready
from musehub.metrics import metrics_view

admin.autodiscover()  # SimpleAdminConfig (settings): the admin modules load with the URLs, not at start-up

handler404 = "hubhttp.errors.not_found"
handler500 = "hubhttp.errors.server_error"

urlpatterns = [
    path("health", health, name="health"),
    path("health/ready", ready, name="health-ready"),
    path("metrics", metrics_view, name="metrics"),
    # A push or clone of admin/x must answer JSON, not the admin's login page (wire clients print the body).
    re_path(rf"^(?P<owner>admin)/(?P<slug>[^/]+)/(?P<suffix>{WIRE_SUFFIXES})$", reserved_owner_route),
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
    path("", include("wire.urls")),
    path("", include("web.urls")),  # the web pages: exact page routes only, so other URLs stay JSON 404
    re_path(r"", unmatched, name="unmatched"),
]
