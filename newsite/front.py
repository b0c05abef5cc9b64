"""newsite's front (caching/front.py) around the Django application: WSGI (newsite/wsgi.py,
`wrap`) or ASGI (newsite/asgi.py, `wrap_asgi`), one decision, the same gates and twins.

The front answers L1 and L2 hits of public views without running MIDDLEWARE, so it must add what each
middleware adds to such a response, and step aside whenever one would do something else. Each
entry of settings.MIDDLEWARE is looked up below; one the front does not know turns it off
(a warning in the log, /health/cache/ says why) rather than answer differently from Django:

| middleware | on a cached public GET/HEAD | the front |
|---|---|---|
| newsite RequestLatencyMiddleware | latency + responses metrics, X-Served-By for the canary | `newsite.ops.middleware.front_twin` (the same `record()`) |
| django-structlog RequestMiddleware | X-Request-ID (the client's when sane, else a uuid4); request_started/finished log lines | `logs.front_request_id` (else a uuid4-shaped id: logs.fresh_request_id); off when those lines are enabled (REQUEST_LOG_LEVEL=INFO) |
| SecurityMiddleware | X-Content-Type-Options, Referrer-Policy, Cross-Origin-Opener-Policy, HSTS when secure; SSL redirect | the headers Django's own process_response adds to a probe response (secure and not); plain HTTP with SECURE_SSL_REDIRECT goes to Django |
| WhiteNoiseMiddleware | serves files under STATIC_URL | those paths go to Django |
| SessionMiddleware, CsrfViewMiddleware, MessageMiddleware, ReadYourWritesMiddleware | nothing, unless the request carries their cookie (an invalid one is answered with a Set-Cookie) | a request with the session, CSRF, messages or replica-pin cookie goes to Django |
| CommonMiddleware | Content-Length; 400 for a Host outside ALLOWED_HOSTS, 403 for DISALLOWED_USER_AGENTS, PREPEND_WWW redirects | Content-Length; Host checked with Django's own get_host(); off with DISALLOWED_USER_AGENTS or PREPEND_WWW |
| AuthenticationMiddleware | nothing (public views read no user) | nothing |
| XFrameOptionsMiddleware | X-Frame-Options | as SecurityMiddleware |
| ResponseCacheMiddleware (last) | the entry: Content-Type, Cache-Control, tags, ETag, Last-Modified, Vary, Age, X-Cache, 304 | caching/front.py |
| anything with a `wsgi_front_twin` attribute (bench.middleware.worker_header) | its own | that callable(hit) |

Not reproduced: Django's request_started / request_finished signals (close_old_connections and
reset_queries: a front hit opens no connection and runs no query).

Switch: settings.CACHE_WSGI_FRONT (env CACHE_WSGI_FRONT, default on).
"""

from __future__ import annotations

import gc
import logging
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.messages.storage.cookie import CookieStorage
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest, HttpResponse
from django.http.cookie import parse_cookie
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.module_loading import import_string

from caching.front import AsgiResponseFront, FrontHit, ResponseFront
from newsite.db_routers import PIN_COOKIE
from newsite.ops import logs
from newsite.ops.middleware import front_twin as latency_twin

logger = logging.getLogger("newsite.front")

# Middleware that change nothing of a cached public response to a request without their cookie.
COOKIE_ONLY = frozenset({
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "newsite.db_routers.ReadYourWritesMiddleware",
})
NOTHING = frozenset({"django.contrib.auth.middleware.AuthenticationMiddleware"})
HEADER_ONLY = {
    "django.middleware.security.SecurityMiddleware": SecurityMiddleware,
    "django.middleware.clickjacking.XFrameOptionsMiddleware": XFrameOptionsMiddleware,
}
RESPONSE_CACHE = frozenset({"newsite.middleware.ResponseCacheMiddleware",
                            "caching.middleware.PublicResponseCacheMiddleware"})


class FrontUnsupported(Exception):
    """The stack does something the front cannot reproduce: Django answers everything."""


class EnvironRequest:
    """Django's own scheme/host code (HttpRequest.scheme, get_host(), ...) over a WSGI environ,
    without building a request: only what those methods read."""

    __slots__ = ("META", "environ")

    def __init__(self, environ):
        self.META = self.environ = environ

    scheme = HttpRequest.scheme
    is_secure = HttpRequest.is_secure
    get_host = HttpRequest.get_host
    _get_raw_host = HttpRequest._get_raw_host
    get_port = HttpRequest.get_port
    _get_scheme = WSGIRequest._get_scheme


def _probe_headers(middleware_class, *, secure: bool) -> list[tuple[str, str]]:
    """The headers `middleware_class.process_response` adds to a response (Django's code, run
    once on a probe at start-up: the values come from settings)."""
    environ = {"wsgi.url_scheme": "https" if secure else "http", "SERVER_NAME": "probe", "SERVER_PORT": "80"}
    if secure and settings.SECURE_PROXY_SSL_HEADER:
        header, value = settings.SECURE_PROXY_SSL_HEADER
        environ[header] = value
    response = HttpResponse()
    before = {name.lower() for name in response.headers}
    middleware_class(lambda request: response).process_response(EnvironRequest(environ), response)
    return [(name, value) for name, value in response.items() if name.lower() not in before]


def _headers_twin(middleware_class):
    plain = _probe_headers(middleware_class, secure=False)
    secure = _probe_headers(middleware_class, secure=True)
    if plain == secure:
        def twin(hit: FrontHit) -> None:
            hit.headers.extend(plain)
    else:  # HSTS: only over HTTPS
        def twin(hit: FrontHit) -> None:
            hit.headers.extend(secure if EnvironRequest(hit.environ).is_secure() else plain)
    return twin


def _request_id_twin(hit: FrontHit) -> None:
    hit.headers.append((logs.REQUEST_ID_HEADER, logs.front_request_id(hit.environ)))


def _content_length_twin(hit: FrontHit) -> None:
    hit.headers.append(("Content-Length", "0" if hit.status_code == 304 else str(len(hit.body))))


_HOSTS_MAX = 1000
_hosts: dict[str, bool] = {}


def _host_allowed(environ) -> bool:
    """Django's get_host() accepts the request's host (remembered per Host header, bounded)."""
    if settings.USE_X_FORWARDED_HOST and "HTTP_X_FORWARDED_HOST" in environ:
        raw = "xfh:" + environ["HTTP_X_FORWARDED_HOST"]
    else:
        raw = environ.get("HTTP_HOST")
    allowed = _hosts.get(raw) if raw is not None else None
    if allowed is None:
        try:
            EnvironRequest(environ).get_host()
            allowed = True
        except (DisallowedHost, KeyError):
            allowed = False
        if raw is not None:
            if len(_hosts) >= _HOSTS_MAX:
                _hosts.clear()
            _hosts[raw] = allowed
    return allowed


def _ssl_redirect_gate(environ) -> bool:
    return EnvironRequest(environ).is_secure()


def _cookie_gate(names: frozenset):
    def gate(environ) -> bool:
        raw = environ.get("HTTP_COOKIE")
        return not raw or names.isdisjoint(parse_cookie(raw))
    return gate


def _static_gate(prefix: str):
    def gate(environ) -> bool:
        return not environ.get("PATH_INFO", "").startswith(prefix)
    return gate


def build(middleware: list[str]) -> tuple[list, list]:
    """(gates, twins) reproducing `middleware` for the front; FrontUnsupported when one of them
    cannot be reproduced. Twins are in process_response order (the last middleware first)."""
    _hosts.clear()  # ALLOWED_HOSTS may have changed (tests)
    if not middleware or middleware[-1] not in RESPONSE_CACHE:
        raise FrontUnsupported("the response-cache middleware is not last in MIDDLEWARE")
    gates, twins, cookies = [], [], set()
    for path in reversed(middleware[:-1]):
        if path in NOTHING:
            continue
        if path in COOKIE_ONLY:
            if path.endswith("SessionMiddleware"):
                cookies.add(settings.SESSION_COOKIE_NAME)
            elif path.endswith("CsrfViewMiddleware"):
                cookies.add(settings.CSRF_COOKIE_NAME)
            elif path.endswith("MessageMiddleware"):
                cookies.add(CookieStorage.cookie_name)
            else:
                cookies.add(PIN_COOKIE)
        elif path in HEADER_ONLY:
            twins.append(_headers_twin(HEADER_ONLY[path]))
            if path.endswith("SecurityMiddleware") and settings.SECURE_SSL_REDIRECT:
                gates.append(_ssl_redirect_gate)
        elif path == "django.middleware.common.CommonMiddleware":
            if settings.DISALLOWED_USER_AGENTS or settings.PREPEND_WWW:
                raise FrontUnsupported("DISALLOWED_USER_AGENTS / PREPEND_WWW are set")
            gates.append(_host_allowed)
            twins.append(_content_length_twin)
        elif path == "whitenoise.middleware.WhiteNoiseMiddleware":
            if getattr(settings, "WHITENOISE_ROOT", None):
                raise FrontUnsupported("WHITENOISE_ROOT serves files at any path")
            static = urlsplit(settings.STATIC_URL or "/static/").path.strip("/")
            gates.append(_static_gate(f"/{static}/"))
        elif path == "django_structlog.middlewares.RequestMiddleware":
            from django_structlog.app_settings import app_settings as structlog_settings

            level = min(structlog_settings.STATUS_START_LOG_LEVEL, structlog_settings.STATUS_2XX_LOG_LEVEL,
                        structlog_settings.STATUS_DEFAULT_LOG_LEVEL)
            if logging.getLogger("django_structlog.middlewares.request").isEnabledFor(level):
                raise FrontUnsupported("django-structlog request lines are enabled (REQUEST_LOG_LEVEL)")
            twins.append(_request_id_twin)
        elif path == "newsite.ops.middleware.RequestLatencyMiddleware":
            twins.append(latency_twin)
        else:
            twin = getattr(import_string(path), "wsgi_front_twin", None)
            if twin is None:
                raise FrontUnsupported(f"{path} has no WSGI front twin")
            twins.append(twin)
    if cookies:
        gates.insert(0, _cookie_gate(frozenset(cookies)))
    return gates, twins


_status: dict = {"enabled": False, "reason": "neither newsite.wsgi nor newsite.asgi loaded in this process"}
_installed: ResponseFront | None = None


def wrap(app, *, install: bool = False, front_class: type[ResponseFront] = ResponseFront):
    """`app` behind the front, or `app` itself (with `front_off_reason`) when the switch is off
    or the middleware cannot be reproduced. `install`: this is the process's application
    (newsite/wsgi.py, newsite/asgi.py): status() reports it. `front_class`: ResponseFront
    around a WSGI application, AsgiResponseFront around an ASGI one (`wrap_asgi`)."""
    global _installed, _status
    front = None
    if not getattr(settings, "CACHE_WSGI_FRONT", True):
        app.front_off_reason = "CACHE_WSGI_FRONT is off"
    else:
        try:
            gates, twins = build(list(settings.MIDDLEWARE))
        except FrontUnsupported as exc:
            logger.warning("front off: %s", exc)
            app.front_off_reason = str(exc)
        else:
            front = front_class(app, gates=gates, twins=twins)
    if install:
        _installed = front
        _status = {"enabled": False, "reason": app.front_off_reason} if front is None else {}
    return front or app


def wrap_asgi(app, *, install: bool = False):
    """`wrap` for Django's ASGI application (get_asgi_application())."""
    return wrap(app, install=install, front_class=AsgiResponseFront)


class FreezeAfterWarmup:
    """`app`, and at this process's `after`-th request one more gc.freeze(): what the first
    requests built lazily (URL resolver and route caches, serializers, metric children,
    translations) is as long-lived as the import's objects, and left in the collector's sight
    it made every full collection scan ~20,000 objects (9 ms of CPU here, 20-50 ms of wall
    time with the GIL held on a busy core: the slowest 503s of a database outage, issue 15;
    ~1 ms after). Once: what the freeze catches in flight (a few requests' reference cycles)
    is never collected, and freezing again would leak that each time. GC_FREEZE_AFTER_REQUESTS
    0: no second freeze. A WSGI application; AsgiFreezeAfterWarmup for an ASGI one."""

    def __init__(self, app, after: int):
        self.app = app
        self.left = after

    def tick(self) -> None:
        if self.left > 0:
            self.left -= 1  # racy across threads: at worst two freezes at once, which is harmless
            if self.left == 0:
                gc.freeze()

    def __call__(self, environ, start_response):
        self.tick()
        return self.app(environ, start_response)

    def __getattr__(self, name):  # front_off_reason, snapshot(): the wrapped application's
        return getattr(self.app, name)


class AsgiFreezeAfterWarmup(FreezeAfterWarmup):
    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            self.tick()
        return await self.app(scope, receive, send)


def status() -> dict:
    """For /health/cache/: {"enabled": True, "served": ..., "passed_to_django": ...} or why it is off."""
    return _installed.snapshot() if _installed is not None else dict(_status)
