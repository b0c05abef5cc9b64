"""Observability of newsite: /metrics, /health/, /health/cache/, request latency, structured logs.

Modules: views (the three endpoints), admin_views (the admin Cache page, /admin/cache/) and
admin_site (the admin site linking it), probes (DB / Redis / broker checks, each bounded to ~1 s),
hitratios (hit ratios per tier and prefix since start and over recent windows: the sampler),
cachestats (the /health/cache/ report: those ratios, L1, breakers, outbox backlog, last warm_cache
run, the canary), canary with models and tasks (the freshness canary), middleware (request
latency by endpoint), metrics (the HTTP and canary metrics, metrics_registry() for /metrics, and
the multiprocess helpers deploy/gunicorn.conf.py and newsite/wsgi.py use; the cache metrics live
in caching/metrics.py), logs (key=value log lines), checks (system checks). See
docs/observability.md.
"""
