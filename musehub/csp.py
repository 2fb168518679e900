"""Content-Security-Policy on every answer that brings none of its own: a page loads nothing from another host.

Rendered Markdown (a README, a proposal) may hold ``<img src="http://elsewhere/…">``;
without a policy every viewer's browser would fetch it, telling that host who
looked at which repository and when, private ones included. The hub's pages
need nothing from another host (one stylesheet, no script), so the policy
allows the hub itself and ``data:`` images only.

Answers that set their own policy keep it: the raw file route
(``sandbox; default-src 'none'``) and the API docs page (Redoc's script).
The admin's pages (Django's templates and scripts) may use inline styles (a
``<style>`` block, styles its scripts set); their scripts still come from the
hub only. With ``MUSEHUB_DEBUG=1``, error answers go without a policy:
Django's debug pages are inline styles and scripts.
"""

from __future__ import annotations

from django.conf import settings

POLICY = "; ".join(
    (
        "default-src 'self'",
        "img-src 'self' data:",
        "style-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
INLINE_STYLE_POLICY = POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")


class ContentSecurityPolicyMiddleware:
    """Set :data:`POLICY` (:data:`INLINE_STYLE_POLICY` on the admin's pages) where no policy is set."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Content-Security-Policy" in response or (settings.DEBUG and response.status_code >= 400):
            return response
        match = getattr(request, "resolver_match", None)
        admin = match is not None and "admin" in match.namespaces
        response["Content-Security-Policy"] = INLINE_STYLE_POLICY if admin else POLICY
        return response
