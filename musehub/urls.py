"""Top-level routes: health, metrics, admin, the repository REST API, API schema, signed storage URLs, wire endpoints."""

from django.contrib import admin
from django.urls import include, path

from musehub.health import health, ready
from musehub.metrics import metrics_view

urlpatterns = [
    path("health", health, name="health"),
    path("health/ready", ready, name="health-ready"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/repos/<str:owner>/<str:slug>/", include("repos.urls")),
    path("", include("wire.urls")),
]
