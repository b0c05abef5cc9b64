"""Installed only by bench.settings: counts SQL statements and times garbage collections per
process for the harness."""

from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "bench"
    label = "bench"
    verbose_name = "Benchmark harness"

    def ready(self):
        from django.db.backends.signals import connection_created

        from bench import counters

        connection_created.connect(counters.install_query_counter, dispatch_uid="bench-query-counter")
        counters.install_gc_probe()
