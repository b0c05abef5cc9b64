"""Who may write: Django model permissions, not `is_staff` (issue 16.6).

POST /api/articles/ needs articles.add_article, PATCH articles.change_article, DELETE
articles.delete_article; purging caches (the admin action and the /admin/cache/ form) needs
articles.purge_cache (Article.Meta.permissions). Superusers have them all.
"""

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


def can_purge_cache(user) -> bool:
    return bool(user and user.is_authenticated and user.has_perm(PURGE_CACHE))
