"""Django cache backends built on the tiered cache. `caching.backends.TieredCache` is the one:
see caching/backends/tiered.py and README ("Using the tiered cache in another project")."""

from caching.backends.tiered import CacheUnavailable, TieredCache  # noqa: F401
