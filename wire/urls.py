"""Wire routes (wire.md §3): /{owner}/{slug}/… plus the hub-signed storage URLs."""

from django.urls import path

from wire import views

urlpatterns = [
    path("_storage/<str:token>", views.SignedStorageView.as_view(), name="storage-signed"),
]
