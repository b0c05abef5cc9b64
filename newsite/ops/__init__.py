"""Observability of newsite: /metrics, /health/, /health/cache/, request latency, structured logs.

Modules: views (the three endpoints), admin_views (the admin Cache page, /admin/cache/), probes (DB / Redis / broker checks, each bounded to ~1 s),
hitratios (hit ratios per tier and prefix since start and over recent windows: the sampler),
cachestats (the /health/cache/ report: those ratios, L1, breakers, outbox backlog, last warm_cache
run, the canary), middleware (request latency by endpoint), metrics (the
HTTP metrics; the cache ones live in caching/metrics.py), logs (key=value log lines), gunicorn
(multiprocess hooks used by deploy/gunicorn.conf.py). See docs/observability.md.
"""
