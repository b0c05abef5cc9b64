"""PublicResponseCacheMiddleware: serves public GET/HEAD responses from the tiers.

It acts in process_view, after URL resolution and before the view, only for views marked with
`caching.http.cache_public`. Put it last in MIDDLEWARE. Cost of a hit: parameter validation, one
key build, one tier lookup (L1: a dict get; L2: one Redis command) and the header writes.
"""

from __future__ import annotations

from django.http import Http404

import caching
from caching import keys
from caching.http import Uncacheable, entry_from_response, policy_of, serve_entry, serve_negative

SAFE = frozenset({"GET", "HEAD"})


class PublicResponseCacheMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.method not in SAFE:
            return None
        policy = policy_of(view_func)
        if policy is None:
            return None
        params = policy.validated_params(request.GET)
        if params is None:
            return None  # the view answers 400 with its message; nothing is cached
        key = keys.response_key(request.resolver_match.url_name, view_kwargs, params)

        def load():
            try:
                response = view_func(request, *view_args, **view_kwargs)
            except Http404:
                return None
            if hasattr(response, "render") and callable(response.render):
                response = response.render()
            if response.status_code == 200:
                return entry_from_response(response, policy)
            if response.status_code == 404:
                return None
            raise Uncacheable(response)

        def tags_of(entry):
            return entry.tags if entry is not None else tuple(policy.negative_tags(view_kwargs))

        try:
            fetched = caching.fetch(key, load, kind=policy.kind, tags=tags_of)
        except Uncacheable as exc:
            return exc.response
        if fetched.value is None:
            return serve_negative(request, policy, view_kwargs, source=fetched.source, filled_at=fetched.filled_at)
        return serve_entry(request, fetched.value, source=fetched.source, filled_at=fetched.filled_at)
