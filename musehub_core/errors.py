"""The hub's domain errors: one class per thing that can go wrong.

Each class carries a machine-readable ``code``, the HTTP ``status`` it maps to
and a sentence a person can act on. Nothing below a view knows about HTTP; the
one place that turns these into responses is ``hubhttp.errors``.
"""

from __future__ import annotations

from typing import Any


class MuseHubError(Exception):
    """Base of every domain error."""

    code = "error"
    status = 500
    default_message = "The hub could not complete the request."

    def __init__(self, message: str | None = None, **data: Any) -> None:
        self.message = message or self.default_message
        self.data = data
        super().__init__(self.message)

    def headers(self) -> dict[str, str]:
        """Return extra HTTP headers the response should carry."""
        return {}


class BadRequest(MuseHubError):
    code = "bad_request"
    status = 400
    default_message = "The request body is malformed."


class MalformedPack(MuseHubError):
    code = "malformed_pack"
    status = 422
    default_message = "The mpack is malformed or inconsistent."


class UnsafePath(MalformedPack):
    code = "unsafe_path"
    default_message = "A path holds a control or bidirectional character."


class TruncatedPack(MalformedPack):
    default_message = "The pack is truncated."


class PayloadTooLarge(MuseHubError):
    code = "too_large"
    status = 413
    default_message = "The request exceeds a size limit of this hub."


class LengthRequired(MuseHubError):
    code = "length_required"
    status = 411
    default_message = "Send the request body with a Content-Length header (chunked bodies are not accepted)."


class ReplyTooLarge(PayloadTooLarge):
    code = "reply_too_large"


class RangeNotSatisfiable(MuseHubError):
    """A ``Range:`` request none of whose bytes exist (it starts past the end): 416 with ``Content-Range: bytes */size``."""

    code = "range_not_satisfiable"
    status = 416
    default_message = "The requested range starts past the end of the file."

    def __init__(self, size: int, message: str | None = None) -> None:
        super().__init__(message or f"The requested range starts past the end of the file ({size} bytes).", size=size)

    def headers(self) -> dict[str, str]:
        return {"Content-Range": f"bytes */{self.data['size']}"}


class AuthenticationRequired(MuseHubError):
    code = "unauthenticated"
    status = 401
    default_message = "Authentication is required: send 'Authorization: Bearer <token>'."


class PermissionDenied(MuseHubError):
    code = "forbidden"
    status = 403
    default_message = "You do not have permission to do that."


class BadSignature(PermissionDenied):
    """A hub-signed storage URL is forged, for another method, or expired."""

    code = "bad_signature"
    default_message = "The storage URL signature is invalid."


class NotFound(MuseHubError):
    code = "not_found"
    status = 404
    default_message = "Not found."


class RepoNotFound(NotFound):
    code = "repo_not_found"
    default_message = "Repository not found."


class RepoMoved(RepoNotFound):
    """The repository was renamed or transferred; ``moved_to`` names it now (wire clients refuse redirects)."""

    code = "repo_moved"
    default_message = "The repository has moved."


class ReservedOwner(NotFound):
    """A hub route name (``admin``, ``api``, ...) cannot own repositories."""

    code = "reserved_owner"
    default_message = "That owner name is reserved by the hub; no repository can live under it."


class RefNotFound(NotFound):
    code = "ref_not_found"
    default_message = "No branch or commit by that name."


class PackNotFound(NotFound):
    code = "unknown_mpack"
    default_message = "No uploaded mpack with that key for this repository."


class Conflict(MuseHubError):
    code = "conflict"
    status = 409
    default_message = "The request conflicts with the current state."


class NonFastForward(Conflict):
    code = "non_fast_forward"
    default_message = (
        "The push is not a fast-forward: the branch moved since you last fetched. "
        "Fetch and merge first, or push with force."
    )


class DefaultBranch(Conflict):
    code = "default_branch"
    default_message = "The default branch cannot be deleted."


class BranchInUse(Conflict):
    code = "branch_in_use"
    default_message = "An open proposal uses this branch."


class BranchNameClash(MuseHubError):
    """A branch would be a folder of another branch, or hold one (git's rule)."""

    code = "branch_name_clash"
    status = 422  # not 409: the muse CLI prints every 409 as "remote diverged", hiding the reason
    default_message = "A branch name cannot be a folder of another branch's name."


class UnknownBranch(MuseHubError):
    """A default branch that the repository does not have (clones would fail)."""

    code = "unknown_branch"
    status = 422
    default_message = "The repository has no branch by that name."


class MergeConflict(Conflict):
    code = "merge_conflict"
    default_message = "The branches conflict."


class BranchMoved(Conflict):
    code = "branch_moved"
    default_message = "The target branch moved while the merge was being prepared; merge again."


class UnknownCommit(MuseHubError):
    """A release or tag names a commit the repository does not hold."""

    code = "unknown_commit"
    status = 422
    default_message = "The commit is not in this repository; push it first."


class InvalidRelease(MuseHubError):
    code = "invalid_release"
    status = 422
    default_message = "The release is not consistent with the commit it names."


class InvalidProposal(MuseHubError):
    code = "invalid_proposal"
    status = 422
    default_message = "The merge proposal is not valid."


class Throttled(MuseHubError):
    """Too many failed sign-ins or token authentications: refused until ``retry_after`` seconds have passed."""

    code = "throttled"
    status = 429
    default_message = "Too many failed attempts; try again later."

    def __init__(self, message: str | None = None, *, retry_after: int, **data: Any) -> None:
        super().__init__(message, retry_after=max(1, int(retry_after)), **data)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.data["retry_after"])}


class FetchNotIndexedError(MuseHubError):
    """A blob the fetch needs is known but not yet indexed in any mpack."""

    code = "not_indexed"
    status = 503
    default_message = "Some objects are not indexed yet; retry shortly."
    retry_after = 2

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class StorageUnavailable(MuseHubError):
    code = "storage_unavailable"
    status = 503
    default_message = "Object storage is unavailable; retry shortly."
    failure = ""  # for operators: what failed, in the storage library's words (set where it is raised)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


class DatabaseUnavailable(MuseHubError):
    """The database refused or dropped the connection (an outage, a restart, a failover)."""

    code = "database_unavailable"
    status = 503
    default_message = "The database is unavailable; retry shortly."

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


class IntegrityError(MuseHubError):
    """Stored content does not match its id (corruption found while serving)."""

    code = "integrity_error"
    status = 500
    default_message = "Stored content failed its integrity check."
