"""The S3 storage class settings name: django-storages' S3Storage, with botocore's client configuration built
when the storage is first used rather than when settings load.

Importing ``botocore.config`` costs about 0.1 s (most of botocore comes with
it). Built in ``settings.py``, every process paid for it at start-up, a
``manage.py`` command that never touches storage included.
"""

from __future__ import annotations

from typing import Any

from storages.backends.s3 import S3Storage


class HubS3Storage(S3Storage):
    """S3Storage taking ``connect_timeout``, ``read_timeout`` and ``max_attempts`` (the first attempt included)
    as plain options; a ``client_config`` given as well is used as it is."""

    def __init__(self, *, connect_timeout: int = 5, read_timeout: int = 30, max_attempts: int = 3, **options: Any):
        if options.get("client_config") is None:
            from botocore.config import Config

            options["client_config"] = Config(
                s3={"addressing_style": options.get("addressing_style") or "path"},
                signature_version=options.get("signature_version") or "s3v4",
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                # total_max_attempts counts the first attempt; botocore's max_attempts counts retries only.
                retries={"total_max_attempts": max_attempts, "mode": "standard"},
            )
        super().__init__(**options)
