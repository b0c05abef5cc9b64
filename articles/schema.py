"""OpenAPI (drf-spectacular): a public read's query parameters come from its cache policy.

A public view declares its parameters once, in `@cache_public_json(params=...)`: the cache key,
the view (caching.http.request_params) and this schema all read that declaration.
"""

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from caching.http import policy_of
from caching.params import IntParam

from .params import MAX_PAGE, MAX_QUERY_LENGTH

DESCRIPTIONS = {
    "page": f"1-based page number (20 a page, at most {MAX_PAGE})",
    "q": f"search words (websearch syntax, 1-{MAX_QUERY_LENGTH} characters)",
}


def openapi_parameters(spec: tuple) -> list[OpenApiParameter]:
    """OpenAPI query parameters of a caching.params spec (IntParam: integer, StrParam: string)."""
    out = []
    for param in spec:
        is_int = isinstance(param, IntParam)
        out.append(OpenApiParameter(
            param.name,
            OpenApiTypes.INT if is_int else OpenApiTypes.STR,
            required=param.default is None if is_int else param.required,
            description=DESCRIPTIONS.get(param.name, ""),
        ))
    return out


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's AutoSchema (settings.REST_FRAMEWORK DEFAULT_SCHEMA_CLASS), plus the
    query parameters of a cached public view's GET."""

    def get_override_parameters(self):
        parameters = super().get_override_parameters()
        policy = policy_of(self.view)
        if policy is None or self.method != "GET":
            return parameters
        return [*openapi_parameters(policy.params), *parameters]
