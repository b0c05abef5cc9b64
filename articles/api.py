"""JSON API views (DRF). Thin: validate input, call a selector or a service, answer.

Public reads never authenticate (no session is read, so no `Vary: Cookie` and nothing
user-specific can leak into a public response); personal and editorial views do.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.exceptions import APIException, MethodNotAllowed, NotFound, Throttled, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from caching.http import cache_public, request_params, set_cache_tags
from caching.params import ParamError, parse_params
from newsite.throttle import PUBLIC_MISS, BudgetThrottle, charge, client_address

from . import invalidation as contract
from . import pages, preview, selectors, services
from .http import editorial_etag, json_not_found, json_response, personal
from .models import Article
from .params import PAGE_PARAMS, SEARCH_PARAMS
from .permissions import ArticleChange, ArticleEditorial, SameSiteOnly
from .schema import openapi_parameters
from .serializers import (
    ArticleWriteSerializer,
    CommentWriteSerializer,
    CorrectionWriteSerializer,
    FollowSerializer,
    ProfileWriteSerializer,
    RevertSerializer,
)


class JSONOnly(DefaultContentNegotiation):
    """The API has one representation, JSON: `?format=`, `Accept` and the browsable renderer
    are ignored, so nothing the client negotiates can change a response that a shared cache
    keeps under a key without them (issue 16.1, docs/http.md "Content negotiation")."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class JSONAPIView(APIView):
    """JSON in and out: a body of another media type is a 415 (the schema documents
    application/json only; form fields cannot carry the JSON types the schema promises)."""

    renderer_classes = (JSONRenderer,)
    parser_classes = (JSONParser,)
    content_negotiation_class = JSONOnly

    def initial(self, request, *args, **kwargs):
        # A method the view does not have is a 405 for everyone, before authentication (DRF
        # would answer 401 first, and the 405 only to a logged-in client).
        method = request.method.lower()
        if method not in self.http_method_names or not hasattr(self, method):
            self.format_kwarg = None
            raise MethodNotAllowed(request.method)
        super().initial(request, *args, **kwargs)


def cache_public_json(**policy):
    """A public JSON read (caching.http.cache_public) whose cached 404 is the API's JSON 404."""
    return cache_public(not_found=json_not_found, **policy)


def _invalid(exc: ParamError) -> ValidationError:
    return ValidationError({exc.name: [exc.message]})


def public_params(view) -> dict:
    """A public view's own query parameters, declared once in its @cache_public_json and
    parsed once per request (by the cache middleware); a bad value is a 400."""
    try:
        return request_params(view.request, view)
    except ParamError as exc:
        raise _invalid(exc) from exc


def validated(spec: tuple, request) -> dict:
    """The parameters of an uncached (personal) view; unknown ones (utm_*, busters) are ignored."""
    try:
        return parse_params(spec, request.query_params)
    except ParamError as exc:
        raise _invalid(exc) from exc


def public_json(data: dict, tags, *, last_modified=None):
    return set_cache_tags(json_response(data), tags, last_modified=last_modified)


def found(data):
    if data is None:
        raise NotFound()
    return data


class PublicAPIView(JSONAPIView):
    """GET/HEAD only for anonymous readers; no authentication runs."""

    authentication_classes = ()
    permission_classes = (permissions.AllowAny,)


class PersonalAPIView(JSONAPIView):
    permission_classes = (permissions.IsAuthenticated,)

    def finalize_response(self, request, response, *args, **kwargs):
        return personal(super().finalize_response(request, response, *args, **kwargs))


# --- public ------------------------------------------------------------------------------------


class PublicReadEditorialWriteView(JSONAPIView):
    """Reads are public (no authentication runs); writes need an editor."""

    def _is_read(self) -> bool:
        request = getattr(self, "request", None)
        return request is None or request.method in permissions.SAFE_METHODS

    def get_authenticators(self):
        return [] if self._is_read() else super().get_authenticators()

    def get_permissions(self):
        return [permissions.AllowAny()] if self._is_read() else [ArticleEditorial()]


@cache_public_json(kind="homepage_feed", params=PAGE_PARAMS)
class ArticleListView(PublicReadEditorialWriteView):
    """GET: the home feed (public). POST: create an article (editorial)."""


    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Home feed", operation_id="articles_list")
    def get(self, request):
        data = selectors.home_feed(page=public_params(self)["page"])
        return public_json(data, contract.home_feed_tags(data), last_modified=selectors.last_modified_of(data["results"]))

    @extend_schema(request=ArticleWriteSerializer, responses={201: OpenApiTypes.OBJECT}, summary="Create an article")
    def post(self, request):
        serializer = ArticleWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        author = data.pop("author", None) or getattr(request.user, "author", None)
        if author is None:
            raise ValidationError({"author_id": ["required: this user has no author profile"]})
        article = _service_call(services.article_create, author=author, by=request.user, **data)
        return Response(_editorial_view(article), status=status.HTTP_201_CREATED)


def article_detail_response(data: dict):
    """The public JSON of an article's detail: the view's 200, and what `warm_cache --all`
    stores for it (articles/warm.py), so the two are the same bytes, headers and tags."""
    return public_json(data, contract.article_tags(data), last_modified=data["updated_at"])


@cache_public_json(kind="article", negative_tags=contract.missing_article_tags)
class ArticleDetailView(PublicReadEditorialWriteView):
    """GET: a published article (public). PATCH/DELETE: editorial, conditional on If-Match."""

    conditional_writes = ("PATCH", "DELETE")  # If-Match and its 412 in the schema (articles/schema.py)


    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Article detail")
    def get(self, request, article_id: int):
        return article_detail_response(found(selectors.article_detail(article_id=article_id)))

    @extend_schema(request=ArticleWriteSerializer, responses=OpenApiTypes.OBJECT, summary="Edit an article")
    def patch(self, request, article_id: int):
        article = get_object_or_404(Article, pk=article_id)
        serializer = ArticleWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        article = _service_call(services.article_update, article=article, data=dict(serializer.validated_data),
                                if_match=request.headers.get("If-Match"), by=request.user)
        return Response(_editorial_view(article))

    @extend_schema(request=None, responses={204: None}, summary="Delete an article")
    def delete(self, request, article_id: int):
        article = get_object_or_404(Article, pk=article_id)
        _service_call(services.article_delete, article=article, if_match=request.headers.get("If-Match"), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EditorialAPIView(JSONAPIView):
    """Editorial actions on one article: articles.change_article (session or token)."""

    permission_classes = (ArticleChange,)


class CorrectionCreateView(EditorialAPIView):
    @extend_schema(request=CorrectionWriteSerializer, responses={201: OpenApiTypes.OBJECT}, summary="Publish a correction")
    def post(self, request, article_id: int):
        article = get_object_or_404(Article, pk=article_id)
        serializer = CorrectionWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        article = _service_call(services.correction_add, article=article, note=serializer.validated_data["note"],
                                by=request.user)
        return Response({**_editorial_view(article), "corrections": article.corrections}, status=status.HTTP_201_CREATED)


class RevisionsView(EditorialAPIView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Revisions of an article, newest first")
    def get(self, request, article_id: int):
        article = get_object_or_404(Article, pk=article_id)
        return Response({"results": selectors.article_revisions(article=article)})


class RevertView(EditorialAPIView):
    conditional_writes = ("POST",)  # If-Match, a 412 when stale (articles/schema.py)

    @extend_schema(request=RevertSerializer, responses=OpenApiTypes.OBJECT, summary="Revert to a revision")
    def post(self, request, article_id: int):
        article = get_object_or_404(Article, pk=article_id)
        serializer = RevertSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        revision_id = serializer.validated_data["revision_id"]
        if not article.history.filter(history_id=revision_id).exists():
            raise NotFound("no such revision of this article")
        article = _service_call(services.article_revert, article=article, revision_id=revision_id, by=request.user,
                                if_match=request.headers.get("If-Match"))
        return Response(_editorial_view(article))


class PreviewLinkView(EditorialAPIView):
    @extend_schema(request=None, responses={201: OpenApiTypes.OBJECT}, summary="A share link to preview the article")
    def post(self, request, article_id: int):
        article = get_object_or_404(Article, pk=article_id)
        return Response(preview.links(article), status=status.HTTP_201_CREATED)


class ArticlePreviewView(EditorialAPIView):
    """POST a change (PATCH's body, fields and validation; a 400 where PATCH's would be): the
    public detail JSON the article would have with it, saved nowhere (no version, revision,
    invalidation or purge), for a draft, a scheduled or a live article. Personal and never cached
    (articles/preview.py); the admin form's "Preview changes" takes the same path."""

    def finalize_response(self, request, response, *args, **kwargs):
        return preview.personal(super().finalize_response(request, response, *args, **kwargs))

    def changed(self, request, article_id: int) -> dict:
        article = get_object_or_404(Article.objects.select_related("author", "category"), pk=article_id)
        serializer = ArticleWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        changed = _service_call(services.article_with_change, article=article, data=dict(serializer.validated_data))
        return preview.detail(changed)

    @extend_schema(request=ArticleWriteSerializer(partial=True), responses=OpenApiTypes.OBJECT,
                   summary="Preview a change: the public detail with it, saved nowhere")
    def post(self, request, article_id: int):
        return Response(self.changed(request, article_id))


class ArticlePreviewPageView(ArticlePreviewView):
    """As ArticlePreviewView, answering the public page (HTML) the article would have."""

    @extend_schema(request=ArticleWriteSerializer(partial=True), responses={(200, "text/html"): OpenApiTypes.STR},
                   summary="Preview a change: the public page with it, saved nowhere")
    def post(self, request, article_id: int):
        return pages.render_article(request._request, self.changed(request, article_id), preview=True)


class PreviewView(JSONAPIView):
    """GET: the JSON an article will have, for whoever holds the signed link (no account); a 404
    once it expired or the article is live. Never cached anywhere (articles/preview.py)."""

    authentication_classes = ()
    permission_classes = (permissions.AllowAny,)

    throttle_classes = ()  # charged after the token is checked (a bad one costs nothing)

    def finalize_response(self, request, response, *args, **kwargs):
        # Every answer, the refusals (404, 429, 405) too, is personal (articles/preview.py).
        return preview.personal(super().finalize_response(request, response, *args, **kwargs))

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 429: OpenApiTypes.OBJECT}, summary="Preview by share link")
    def get(self, request, token: str):
        try:
            article = preview.article_of(token)
        except preview.LinkEnded as exc:
            return Response({"error": "not_found", "detail": str(exc)}, status=status.HTTP_404_NOT_FOUND)
        _, retry_after = charge(request, PUBLIC_MISS)  # uncached database work: the client's budget
        if retry_after is not None:
            raise Throttled(wait=retry_after)
        return Response(preview.detail(article))


@cache_public_json(kind="trending")
class TrendingView(PublicAPIView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Most viewed recently")
    def get(self, request):
        data = selectors.trending()
        return public_json(data, contract.trending_tags(data))


@cache_public_json(kind="breaking_news")
class BreakingNewsView(PublicAPIView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Breaking news of the last 6 hours")
    def get(self, request):
        data = selectors.breaking_news()
        return public_json(data, contract.breaking_tags(data))


@cache_public_json(kind="category_feed")
class CategoryListView(PublicAPIView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Categories")
    def get(self, request):
        data = selectors.category_list()
        return public_json(data, contract.category_list_tags(data))


@cache_public_json(kind="category_feed", params=PAGE_PARAMS, negative_tags=contract.missing_category_tags)
class CategoryArticlesView(PublicAPIView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Category feed")
    def get(self, request, slug: str):
        data = found(selectors.category_feed(slug=slug, page=public_params(self)["page"]))
        return public_json(data, contract.category_feed_tags(data), last_modified=selectors.last_modified_of(data["results"]))


@cache_public_json(kind="author", negative_tags=contract.missing_author_tags)
class AuthorDetailView(PublicAPIView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Author")
    def get(self, request, author_id: int):
        data = found(selectors.author_detail(author_id=author_id))
        return public_json(data, contract.author_tags(data))


@cache_public_json(kind="author", params=PAGE_PARAMS, negative_tags=contract.missing_author_tags)
class AuthorArticlesView(PublicAPIView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Author's articles")
    def get(self, request, author_id: int):
        data = found(selectors.author_feed(author_id=author_id, page=public_params(self)["page"]))
        return public_json(data, contract.author_feed_tags(data), last_modified=selectors.last_modified_of(data["results"]))


@cache_public_json(kind="search_results", params=SEARCH_PARAMS)
class SearchView(PublicAPIView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Full-text search")
    def get(self, request):
        params = public_params(self)
        data = selectors.search(q=params["q"], page=params["page"])
        return public_json(data, contract.search_tags(data))


# --- counters ----------------------------------------------------------------------------------


class ArticleViewsView(PublicAPIView):
    """POST: count one read of a published article. 204, nothing in the body. A client's reads of
    one article count once per VIEW_DEDUPE_SECONDS (a repeat is a 204 too); its POSTs spend
    its "views" budget (THROTTLE: 429 past it); a browser's cross-site POST is a 403."""

    permission_classes = (SameSiteOnly,)
    throttle_classes = (BudgetThrottle,)

    @extend_schema(request=None, responses={204: None}, summary="Count a view")
    def post(self, request, article_id: int):
        if not selectors.article_is_published(article_id=article_id):
            raise NotFound()
        services.article_register_view(article_id=article_id, client=client_address(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- personal ----------------------------------------------------------------------------------


def _published_article(article_id: int) -> Article:
    """A live article (the visibility rule): a scheduled or taken-down one is a 404, like a draft."""
    return get_object_or_404(Article.objects.visible(), pk=article_id)


class CommentCreateView(PersonalAPIView):
    @extend_schema(request=CommentWriteSerializer, responses={201: OpenApiTypes.OBJECT}, summary="Comment")
    def post(self, request, article_id: int):
        article = _published_article(article_id)
        serializer = CommentWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        comment = services.comment_create(article=article, user=request.user, body=serializer.validated_data["body"])
        return Response(
            {"id": comment.id, "article_id": article.id, "body": comment.body, "created_at": comment.created_at},
            status=status.HTTP_201_CREATED,
        )


class LikeView(PersonalAPIView):
    @extend_schema(request=None, responses={201: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT}, summary="Like")
    def post(self, request, article_id: int):
        article = _published_article(article_id)
        _, created = services.like_create(article=article, user=request.user)
        return Response(
            {"article_id": article.id, "liked": True},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(request=None, responses={204: None}, summary="Unlike")
    def delete(self, request, article_id: int):
        article = _published_article(article_id)
        services.like_delete(article=article, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProfileView(PersonalAPIView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="My profile")
    def get(self, request):
        return Response(selectors.user_profile_cached(user=request.user))

    @extend_schema(request=ProfileWriteSerializer, responses=OpenApiTypes.OBJECT, summary="Edit my profile")
    def patch(self, request):
        serializer = ProfileWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        user = _service_call(services.profile_update, user=request.user, data=dict(serializer.validated_data))
        return Response(selectors.user_profile(user=user))


class UserFeedView(PersonalAPIView):
    @extend_schema(parameters=openapi_parameters(PAGE_PARAMS), responses=OpenApiTypes.OBJECT, summary="Articles I follow")
    def get(self, request):
        params = validated(PAGE_PARAMS, request)
        return Response(selectors.user_feed(user=request.user, page=params["page"]))


class FollowsView(PersonalAPIView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="What I follow")
    def get(self, request):
        return Response(selectors.user_follows(user=request.user))

    @extend_schema(
        request=FollowSerializer, responses={201: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT}, summary="Follow (200: already followed)"
    )
    def post(self, request):
        serializer = FollowSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        follow, created = services.follow_create(user=request.user, **serializer.validated_data)
        return Response(
            {"id": follow.id, "author_id": follow.author_id, "category_id": follow.category_id},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(request=FollowSerializer, responses={204: None}, summary="Unfollow")
    def delete(self, request):
        serializer = FollowSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not services.follow_delete(user=request.user, **serializer.validated_data):
            raise NotFound("not following that")
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- helpers -----------------------------------------------------------------------------------


class PreconditionFailed(APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_code = "precondition_failed"
    default_detail = "The article changed since the version you read."


def _service_call(service, **kwargs):
    try:
        return service(**kwargs)
    except Article.DoesNotExist as exc:  # deleted between the view's read and the service's lock
        raise NotFound() from exc
    except services.StaleEdit as exc:
        raise PreconditionFailed(str(exc)) from exc
    except services.ServiceError as exc:
        raise ValidationError({"non_field_errors": [str(exc)]}) from exc


def _editorial_view(article: Article) -> dict:
    return {
        "id": article.id,
        "title": article.title,
        "slug": article.slug,
        "status": article.status,
        "state": article.visibility(),
        "published_at": article.published_at,
        "expires_at": article.expires_at,
        "updated_at": article.updated_at,
        "version": article.version,
        # The editorial state's ETag (its version): what an If-Match of the next edit names; a
        # reader's like or comment meanwhile does not make it stale (issue 28.4).
        "etag": editorial_etag(article.version),
        "author_id": article.author_id,
        "category_id": article.category_id,
        "is_breaking": article.is_breaking,
    }
