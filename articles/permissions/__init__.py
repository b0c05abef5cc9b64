"""Who may write: Django model permissions, not `is_staff` (issue 16.6).

POST /api/articles/ needs articles.add_article, PATCH articles.change_article, DELETE
articles.delete_article; purging caches (the admin action and the /admin/cache/ form) needs
articles.purge_cache (Article.Meta.permissions). Superusers have them all.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost
from rest_framework import permissions

PURGE_CACHE = "articles.purge_cache"

ARTICLE_WRITE = {
    "POST": "articles.add_article",
    "PUT": "articles.change_article",
    "PATCH": "articles.change_article",
    "DELETE": "articles.delete_article",
}


class ArticleEditorial(permissions.BasePermission):
    """The model permission of the request's method (401 without credentials, 403 without it)."""

    message = "This needs the articles permission for that change (add, change or delete article)."

    def has_permission(self, request, view):
        perm = ARTICLE_WRITE.get(request.method)
        user = request.user
        return bool(perm and user and user.is_authenticated and user.has_perm(perm))


class ArticleChange(permissions.BasePermission):
    """articles.change_article, whatever the method: corrections, reverts, preview links."""

    message = "This needs the articles.change_article permission."

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(ARTICLE_WRITE["PATCH"]))


def can_purge_cache(user) -> bool:
    return bool(user and user.is_authenticated and user.has_perm(PURGE_CACHE))


class SameSiteOnly(permissions.BasePermission):
    """Refuses a request a browser made for another site's page (issue 28.2: any page on the web
    could make its visitors POST views). The fetch metadata a browser sends decides:
    `Sec-Fetch-Site: cross-site` is refused; so is an `Origin` that is neither this request's
    own (scheme and host) nor one of CSRF_TRUSTED_ORIGINS. A client that sends neither (curl, an
    app, an old browser) passes: the per-client budget is what bounds it."""

    message = "Cross-site requests are refused here."

    def has_permission(self, request, view):
        meta = request.META
        if meta.get("HTTP_SEC_FETCH_SITE", "").lower() == "cross-site":
            return False
        origin = meta.get("HTTP_ORIGIN")
        if origin is None:
            return True
        if origin in settings.CSRF_TRUSTED_ORIGINS:
            return True
        parts = urlsplit(origin)
        try:
            host = request.get_host()
        except DisallowedHost:
            return False
        return parts.scheme == request.scheme and parts.netloc == host
