"""Routes of the wire protocols: signed storage URLs, and each repository's native and MWP endpoints.

Repository routes are ``/{owner}/{slug}/<suffix>`` with no trailing slash (the
muse CLI refuses redirects), so the fixed prefixes above them are reserved names.
"""

from django.urls import path

from wire import releases, views

repo = "<str:owner>/<str:slug>"

urlpatterns = [
    path("_storage/<str:token>", views.SignedStorageView.as_view(), name="storage-signed"),
    path(f"{repo}/refs", views.RefsView.as_view(), name="refs"),
    path(f"{repo}/filter-objects", views.FilterObjectsView.as_view(), name="filter-objects"),
    path(f"{repo}/mpack/upload", views.UploadView.as_view(), name="mpack-upload"),
    path(f"{repo}/mpack/push", views.PushView.as_view(), name="mpack-push"),
    path(f"{repo}/mpack/fetch", views.FetchView.as_view(), name="mpack-fetch"),
    path(f"{repo}/presign", views.PresignView.as_view(), name="mwp-presign"),
    path(f"{repo}/push/objects", views.PushObjectsView.as_view(), name="mwp-push-objects"),
    path(f"{repo}/push", views.MwpPushView.as_view(), name="mwp-push"),
    path(f"{repo}/fetch", views.MwpFetchView.as_view(), name="mwp-fetch"),
    path(f"{repo}/negotiate", views.NegotiateView.as_view(), name="mwp-negotiate"),
    path(f"{repo}/releases", releases.ReleasesView.as_view(), name="mwp-releases"),
    path(f"{repo}/releases/<path:tag>", releases.ReleaseView.as_view(), name="mwp-release"),
    path(f"{repo}/tags", releases.TagsView.as_view(), name="mwp-tags"),
]
