"""A public view whose loader the test can hold: it reads the article, then waits for a PostgreSQL
advisory lock the test may hold, then answers. The test sees a loader waiting at the gate in
pg_locks (a non-granted advisory lock (GATE_CLASS, gate)), so it can act while the load is in
flight (a write, a purge) without sleeping. Tagged like the article detail: article:{id}."""

from django.db import connection
from django.http import JsonResponse

from articles import tags
from articles.models import Article
from caching.http import cache_public, set_cache_tags

GATE_CLASS = 7114  # first key of the two-int advisory lock; the second is the URL's gate number


@cache_public(kind="article", negative_tags=lambda kw: [tags.article_tag(kw["article_id"])])
def gated_article(request, gate: int, article_id: int):
    article = Article.objects.only("id", "title", "version").filter(pk=article_id).first()  # query 1
    with connection.cursor() as cursor:  # query 2: waits while the test holds the gate
        cursor.execute("SELECT pg_advisory_lock_shared(%s, %s)", [GATE_CLASS, gate])
        cursor.execute("SELECT pg_advisory_unlock_shared(%s, %s)", [GATE_CLASS, gate])
    if article is None:
        return JsonResponse({"error": "not_found"}, status=404)
    response = JsonResponse({"id": article.id, "title": article.title, "version": article.version})
    return set_cache_tags(response, [tags.article_tag(article.id)])
