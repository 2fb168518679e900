"""Where things lie in object storage: every key and every ``mpack://`` URI is made and read here.

Keys are content-addressed, so a key is written once and never changes:

- ``mpacks/<hex[:2]>/<hex>.mpack``           push, fetch, repack and server packs
- ``incoming/<upload id>``                   native uploads waiting for their push call
- ``incoming/objects/<repo hex>/<obj hex>``  MWP large objects waiting for their push call
- ``objects/<hex[:2]>/<hex>``                legacy per-object blobs (read-only fallback)

An ``Object`` row's ``storage_uri`` is ``mpack://<mpack id>`` for a blob held in
an mpack, or a legacy per-object URI.
"""

from __future__ import annotations

from typing import TypeGuard

from musehub_core.ids import PREFIX, hex_of

MPACK_SCHEME = "mpack://"
MPACKS = "mpacks/"
INCOMING = "incoming/"
STAGED_OBJECTS = "incoming/objects/"


def mpack_name(mpack_id: str) -> str:
    digest = hex_of(mpack_id)
    return f"{MPACKS}{digest[:2]}/{digest}.mpack"


def mpack_id_of_name(name: str) -> str | None:
    """Return the mpack id a pack key names, or None for any other key."""
    base = name.rsplit("/", 1)[-1]
    return PREFIX + base.removesuffix(".mpack") if base.endswith(".mpack") else None


def staging_name(upload_id: str) -> str:
    return f"{INCOMING}{upload_id}"


def staged_object_name(repo_id: str, object_id: str) -> str:
    return f"{STAGED_OBJECTS}{hex_of(repo_id)}/{hex_of(object_id)}"


def object_name(object_id: str) -> str:
    digest = hex_of(object_id)
    return f"objects/{digest[:2]}/{digest}"


def legacy_object_uri(object_id: str) -> str:
    """Return the ``storage_uri`` of a legacy blob stored under its own key."""
    return f"objects://{hex_of(object_id)}"


def upload_id_of(name: str) -> str | None:
    """Return the upload id a staging key names, or None when *name* is not a native upload key."""
    if name.startswith(STAGED_OBJECTS) or not name.startswith(INCOMING):
        return None
    return name.removeprefix(INCOMING)


def is_staged_object(name: str) -> bool:
    return name.startswith(STAGED_OBJECTS)


def mpack_uri(mpack_id: str) -> str:
    """Return the ``storage_uri`` of a blob held in mpack *mpack_id*."""
    return f"{MPACK_SCHEME}{mpack_id}"


def is_mpack_uri(uri: str | None) -> TypeGuard[str]:
    return uri is not None and uri.startswith(MPACK_SCHEME)


def mpack_of_uri(uri: str) -> str:
    """Return the mpack id of an ``mpack://`` URI."""
    return uri[len(MPACK_SCHEME) :]
