"""Structured log lines through structlog: one logfmt line per event, with the request id.

    timestamp=2026-12-01T20:16:17.123Z level=info logger=newsite.ops event=admin_purge
      request_id=8f0c... user=editor count=2 tags=article:1,feed:home

- log_event(name, **fields): the events operators search for (invalidations, purges, the canary),
  `event=<name>` plus the fields in order; lists are sorted and joined with commas.
- Every stdlib record (Django, Celery, our modules' logging.getLogger lines) is rendered the same
  way by logfmt_formatter() (settings.LOGGING); a message that is already `event=... k=v` (cdn/)
  is lifted into fields rather than quoted whole.
- Request ids: django-structlog's RequestMiddleware binds `request_id` in structlog's contextvars
  for the request, and its Celery receivers put that context on every task the request enqueues
  (a message header) and bind it again in the worker, with the `task_id`: the CDN drain and
  warm_cache lines carry the id of the request that caused them. What django-structlog does not
  do is done here, through its signals: take the client's X-Request-ID only when it is a sane
  token (else a new uuid4), and send the id back on the response.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import shlex
import uuid

import structlog

logger = structlog.get_logger("newsite.ops")

REQUEST_ID_HEADER = "X-Request-ID"
# Letters, digits and . _ : - only, 1-128 long: nothing that could break a log line or a header.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")
KEY_ORDER = ("timestamp", "level", "logger", "event")


# --- processors --------------------------------------------------------------------------------


def _join_lists(_, __, event_dict):
    """Lists, tuples and sets as sorted comma-joined strings (`tags=a,b`), as log lines had them."""
    for key, value in event_dict.items():
        if isinstance(value, (list, tuple, set, frozenset)):
            event_dict[key] = ",".join(sorted(str(v) for v in value))
    return event_dict


def _lift_logfmt_message(_, __, event_dict):
    """A stdlib message that is already `event=name k=v ...` becomes fields (not one quoted
    string); anything else stays the event text."""
    text = event_dict.get("event")
    if not isinstance(text, str) or not text.startswith("event="):
        return event_dict
    try:
        tokens = shlex.split(text)
    except ValueError:
        return event_dict
    fields = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep or not key or any(c <= " " for c in key):
            return event_dict
        fields[key] = value
    event_dict.update({k: v for k, v in fields.items() if k == "event" or k not in event_dict})
    return event_dict


_SHARED = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_structlog() -> None:
    """structlog over the stdlib: its lines go through logging's handlers (settings.LOGGING),
    filtered by level before any processing."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


class SkipAnswered503(logging.Filter):
    """django.request's filter: drops its "Service Unavailable" line. Every 503 here is a
    planned, fast answer with Retry-After (the database breaker's, a lease timeout's), and the
    access log (django-structlog's request_finished, ERROR for a 5xx) has it already; the
    outage itself is logged once by the breaker (event=breaker_open / breaker_closed). A 500
    still logs its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "status_code", None) != 503


def logfmt_formatter() -> logging.Formatter:
    """The logging.Formatter of every handler (settings.LOGGING, the Celery worker's handlers)."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _lift_logfmt_message,
            _join_lists,
            structlog.processors.format_exc_info,
            structlog.processors.LogfmtRenderer(key_order=KEY_ORDER, drop_missing=True),
        ],
    )


# --- events --------------------------------------------------------------------------------------


def log_event(event: str, *, level: int = logging.INFO, **fields) -> None:
    """One `event=<event> k=v ...` line on the "newsite.ops" logger (plus the bound request_id)."""
    logger.log(level, event, **fields)


def log_invalidation(tagset: frozenset[str]) -> None:
    """caching.invalidation.on_invalidate hook: runs inside the writer's transaction (a rollback
    afterwards means the invalidation did not happen; the line says "requested")."""
    log_event("cache_invalidation_requested", count=len(tagset), tags=tagset)


# --- request ids (django-structlog signal receivers, connected in newsite/ops/apps.py) --------


def sane_request_id(value: str | None) -> str | None:
    return value if value and SANE_REQUEST_ID.fullmatch(value) else None


def bind_request_id(request, logger=None, log_kwargs=None, **kwargs) -> None:
    """bind_extra_request_metadata: the client's X-Request-ID replaces the generated uuid when
    it is a sane token; the id is kept on the request for the response header."""
    client_id = sane_request_id(request.headers.get(REQUEST_ID_HEADER))
    if client_id:
        structlog.contextvars.bind_contextvars(request_id=client_id)
    request.request_id = structlog.contextvars.get_contextvars().get("request_id")


_id_prefix, _id_mask, _id_counter = "", 0, itertools.count()


def _seed_request_ids() -> None:
    """74 random bits per process (drawn again in a forked child) for fresh_request_id()."""
    global _id_prefix, _id_mask, _id_counter
    drawn = uuid.uuid4().hex  # its version and variant digits stay where a uuid4 has them
    _id_prefix = f"{drawn[:8]}-{drawn[8:12]}-{drawn[12:16]}-{drawn[16:20]}-"
    _id_mask, _id_counter = int(drawn[20:], 16), itertools.count(1)


_seed_request_ids()
os.register_at_fork(after_in_child=_seed_request_ids)


def fresh_request_id() -> str:
    """A request id shaped as uuid4() (what django-structlog gives a Django request), unique
    without a system call per id: the process's random prefix, then a counter masked by its
    random last 48 bits. uuid4() was 2-3 us of a ~25 us WSGI front hit (issue 29); this is a
    format call. An id correlates log lines and is no secret: that one process's later ids can
    be derived from one of them is harmless."""
    return f"{_id_prefix}{next(_id_counter) ^ _id_mask:012x}"


def front_request_id(environ) -> str:
    """The X-Request-ID of a response the WSGI front answers (newsite/front.py) without
    django-structlog: what prepare() + bind_request_id() give a request with these headers."""
    client = environ.get("HTTP_X_REQUEST_ID")
    if client is None:
        return fresh_request_id()
    sane = sane_request_id(client)
    if sane:
        return sane
    from django_structlog.app_settings import app_settings  # not at import: settings import this module

    if client and app_settings.TRUST_UPSTREAM_REQUEST_ID:
        return client
    return fresh_request_id()


def add_request_id_header(request, response, **kwargs) -> None:
    """bind_extra_request_finished_metadata / update_failure_response: X-Request-ID on the response."""
    request_id = getattr(request, "request_id", None)
    if request_id and response is not None:
        response[REQUEST_ID_HEADER] = request_id


def use_logfmt_in_celery(logger=None, **kwargs) -> None:
    """Celery's after_setup_logger / after_setup_task_logger: its handlers (stderr or --logfile)
    keep their destination and take our formatter, so worker lines look like the app's."""
    if logger is None:
        return
    for handler in logger.handlers:
        handler.setFormatter(logfmt_formatter())
