"""Top-level routes: admin, the repository REST API, API schema, signed storage URLs, and wire endpoints."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/repos/<str:owner>/<str:slug>/", include("repos.urls")),
    path("", include("wire.urls")),
]
