"""HTTP views for the wire protocol. Views parse, authorise and call one service."""

from __future__ import annotations

import os
import re

from django.http import FileResponse, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from wire.storage import FileSystemMPackStore, SignedUrlError, get_backend, verify_signed_url

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@method_decorator(csrf_exempt, name="dispatch")
class SignedStorageView(View):
    """The filesystem backend's signed URLs: GET (with Range) downloads a pack, PUT uploads one."""

    def _name(self, token: str, method: str) -> str:
        return verify_signed_url(token, method)

    def _store(self) -> FileSystemMPackStore | None:
        backend = get_backend()
        return backend if isinstance(backend, FileSystemMPackStore) else None

    def get(self, request, token: str):
        store = self._store()
        try:
            name = self._name(token, "GET")
        except SignedUrlError as exc:
            return JsonResponse({"error": "bad_signature", "detail": str(exc)}, status=403)
        if store is None or not store.storage.exists(name):
            return JsonResponse({"error": "not_found", "detail": "No such object."}, status=404)
        path = store.path_for(name)
        size = os.path.getsize(path)
        match = _RANGE.match(request.headers.get("Range", ""))
        if match and (match.group(1) or match.group(2)):
            start_s, end_s = match.groups()
            if start_s:
                start, end = int(start_s), min(int(end_s) if end_s else size - 1, size - 1)
            else:
                start, end = max(size - int(end_s), 0), size - 1
            if start > end or start >= size:
                response = HttpResponse(status=416)
                response["Content-Range"] = f"bytes */{size}"
                return response
            with open(path, "rb") as handle:
                handle.seek(start)
                data = handle.read(end - start + 1)
            response = HttpResponse(data, status=206, content_type="application/octet-stream")
            response["Content-Range"] = f"bytes {start}-{end}/{size}"
            response["Accept-Ranges"] = "bytes"
            return response
        response = FileResponse(open(path, "rb"), content_type="application/octet-stream")  # noqa: SIM115 (FileResponse closes it)
        response["Content-Length"] = str(size)
        response["Accept-Ranges"] = "bytes"
        return response

    def put(self, request, token: str):
        store = self._store()
        try:
            name = self._name(token, "PUT")
        except SignedUrlError as exc:
            return JsonResponse({"error": "bad_signature", "detail": str(exc)}, status=403)
        if store is None:
            return JsonResponse({"error": "not_found", "detail": "No such object."}, status=404)
        store.storage.save(name, request)
        return HttpResponse(status=200)
