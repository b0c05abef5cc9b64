"""OpenAPI (drf-spectacular), exact about what the API answers (issue 16.7).

- A public read's query parameters come from its cache policy (`@cache_public_json(params=...)`),
  with the bounds the parser enforces (page 1..MAX_PAGE, or SEARCH_MAX_PAGE for search; q 1..MAX_QUERY_LENGTH characters of
  which one is not a space, no control characters): the cache key, the view
  (caching.http.request_params) and this schema all read that one declaration.
- Every operation lists the error responses it can give, in the shape of articles.errors
  ({"error": code, "detail": ...}): 400 with parameters or a body, 404 with a path parameter,
  401/403 where authentication runs, 503 on public reads (database down, a key being rebuilt).
- Request bodies of StrictSerializer (unknown fields are a 400) say `additionalProperties: false`,
  and what DRF's CharField rejects: NUL anywhere, an empty or all-space value
  where blank is not allowed (minLength 1 and a non-space character); `exactly_one_of` is a oneOf.
  The API parses JSON only (415 otherwise), so application/json is the one request media type.
- A DELETE that reads a body (DELETE /api/user/follows/) documents it (drf-spectacular only
  documents bodies of POST/PUT/PATCH).

Checked by tests/test_schemathesis.py (schemathesis, every check, every operation).
"""

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiParameter

from caching.http import policy_of
from caching.params import IntParam

from .params import MAX_QUERY_LENGTH
from .permissions import SameSiteOnly

DESCRIPTIONS = {
    "page": "1-based page number (20 a page, at most {maximum})",
    "q": f"search words (websearch syntax, 1-{MAX_QUERY_LENGTH} characters)",
}
# What caching.params.StrParam accepts: no control character, at least one non-space.
_TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "a stable code: invalid, not_found, not_authenticated, ..."},
        "detail": {"description": "a message, or {field: [messages]} for invalid input"},
    },
    "required": ["error", "detail"],
}
ERROR_DESCRIPTIONS = {
    400: "Invalid parameters or body",
    401: "No valid credentials (session or `Authorization: Token ...`)",
    403: "Authenticated without the permission this needs",
    404: "Not found",
    412: "If-Match does not name the article's current ETag (it changed since you read it)",
    415: "The body is not `application/json`",
    429: "Over the client's budget (uncached reads, counted views): retry after Retry-After seconds",
    503: "The database is unavailable or the page is being rebuilt (Retry-After)",
}
# What DRF's CharField accepts (ProhibitNullCharactersValidator, and trim_whitespace +
# allow_blank=False: something other than spaces). Lone surrogates (ProhibitSurrogateCharactersValidator)
# are rejected too but left out of the pattern: a \ud800-\udfff range is a pattern schemathesis
# drops whole, and no JSON encoder sends them unless asked.
_NO_NUL = r"\x00"
# Article text (articles.models.no_control_characters): no C0 control but tab, newline, CR; no DEL.
_NO_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"


def param_schema(param) -> dict:
    if isinstance(param, IntParam):
        return {"type": "integer", "minimum": param.minimum, "maximum": param.maximum}
    return {"type": "string", "minLength": param.min_length, "maxLength": param.max_length, "pattern": _TEXT_PATTERN}


def openapi_parameters(spec: tuple) -> list[OpenApiParameter]:
    """OpenAPI query parameters of a caching.params spec, with the bounds the parser enforces."""
    out = []
    for param in spec:
        is_int = isinstance(param, IntParam)
        out.append(OpenApiParameter(
            param.name,
            param_schema(param),
            location=OpenApiParameter.QUERY,
            required=param.default is None if is_int else param.required,
            description=DESCRIPTIONS.get(param.name, "").format(maximum=getattr(param, "maximum", None)),
        ))
    return out


def _constrain_text(prop: dict | None, field) -> None:
    """The pattern and minLength of a DRF CharField (a plain string property, no format/enum)."""
    from rest_framework import serializers

    from .models import no_control_characters

    if prop is None or not isinstance(field, serializers.CharField):
        return
    no_controls = no_control_characters in field.validators
    if no_controls and field.allow_blank and "oneOf" in prop:
        # drf-spectacular writes a blank-allowed field as oneOf [the validator's regex, empty],
        # and the regex as matching (it is an inverse match): a body the API refuses. One string.
        del prop["oneOf"]
        prop["type"] = "string"
    if prop.get("type") != "string":
        return
    if no_controls:
        prop.pop("pattern", None)  # drf-spectacular's copy of the validator's regex, which refuses it
    if "pattern" in prop or "format" in prop or "enum" in prop:
        return  # slug (its own pattern), url, email: formats the generators keep to
    refused = _NO_CONTROL if no_controls else _NO_NUL
    if field.allow_blank:
        prop["pattern"] = f"^[^{refused}]*$"
    else:
        prop["pattern"] = rf"^[^{refused}]*[^\s{refused}][^{refused}]*$" if field.trim_whitespace else f"^[^{refused}]*$"
        prop["minLength"] = max(prop.get("minLength", 0), 1)


def _not_null(prop: dict) -> dict:
    return {key: value for key, value in prop.items() if key != "nullable"}


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's AutoSchema (settings.REST_FRAMEWORK DEFAULT_SCHEMA_CLASS), plus the
    query parameters of a cached public view's GET and the error responses of each operation."""

    def get_override_parameters(self):
        parameters = super().get_override_parameters()
        if self._conditional():
            parameters = [*parameters, OpenApiParameter(
                "If-Match", str, location=OpenApiParameter.HEADER, required=False,
                description="the ETag the article had when you read it (its public detail's, or an "
                            "editorial answer's `etag`); `*` matches any: a stale one is a 412",
            )]
        policy = policy_of(self.view)
        if policy is None or self.method != "GET":
            return parameters
        return [*openapi_parameters(policy.params), *parameters]

    def _map_serializer(self, serializer, direction, bypass_extensions=False):
        from .serializers import StrictSerializer

        schema = super()._map_serializer(serializer, direction, bypass_extensions)
        if isinstance(serializer, StrictSerializer):
            schema["additionalProperties"] = False
            for name, field in serializer.fields.items():
                _constrain_text(schema["properties"].get(name), field)
            if serializer.exactly_one_of:
                schema["oneOf"] = [
                    {"required": [name], "properties": {name: _not_null(schema["properties"][name])}}
                    for name in serializer.exactly_one_of
                ]
        return schema

    def _get_request_body(self, direction="request"):
        if self.method not in ("POST", "PUT", "PATCH", "DELETE"):
            return None
        serializer = self.get_request_serializer()
        if self.method != "DELETE" or serializer is None:
            body = super()._get_request_body(direction)
        else:
            self.method = "POST"  # drf-spectacular maps bodies of POST/PUT/PATCH only
            try:
                body = super()._get_request_body(direction)
            finally:
                self.method = "DELETE"
        if body is not None and getattr(serializer, "exactly_one_of", ()):
            body["required"] = True  # no field is required, but one of them is
        return body

    def _conditional(self) -> bool:
        """A write that takes If-Match (one of the view's `conditional_writes` methods)."""
        return self.method in getattr(self.view, "conditional_writes", ())

    def _error_statuses(self) -> list[int]:
        statuses = []
        has_query = any(p.get("in") == "query" for p in self._get_parameters())
        # Every write view declares its body (extend_schema(request=... or None)).
        has_body = self.method in ("POST", "PUT", "PATCH", "DELETE") and bool(self.get_request_serializer())
        if has_query or has_body:
            statuses.append(400)
        authenticates = bool(self.view.get_authenticators())
        if authenticates:
            statuses += [401, 403]
        elif any(isinstance(p, SameSiteOnly) for p in self.view.get_permissions()):
            statuses.append(403)
        if "{" in self.path or self.method == "DELETE":  # DELETE /api/user/follows/: not following
            statuses.append(404)
        if has_body:
            statuses.append(415)
        if self._conditional():
            statuses.append(412)
        if self.method == "GET" and policy_of(self.view) is not None:
            statuses += [429, 503]  # a miss over the client's budget; the database down
        elif self.view.get_throttles():
            statuses.append(429)
        return sorted(statuses)

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for status in self._error_statuses():
            responses.setdefault(str(status), {
                "content": {"application/json": {"schema": ERROR_SCHEMA}},
                "description": ERROR_DESCRIPTIONS[status],
            })
        return responses
