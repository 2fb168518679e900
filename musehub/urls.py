"""Top-level routes: admin, API schema, signed storage URLs, and repository wire endpoints."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("wire.urls")),
]
