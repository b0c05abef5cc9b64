"""Observability of newsite: /metrics, /health/, /health/cache/, request latency, structured logs.

Modules: views (the three endpoints), admin_views (the admin Cache page, /admin/cache/), probes (DB / Redis / broker checks, each bounded to ~1 s),
cachestats (hit ratios per tier and prefix since start and over recent windows, L1, breaker,
outbox backlog, last warm_cache run), middleware (request latency by endpoint), metrics (the
HTTP metrics; the cache ones live in caching/metrics.py), logs (key=value log lines), gunicorn
(multiprocess hooks used by deploy/gunicorn.conf.py). See docs/observability.md.
"""
