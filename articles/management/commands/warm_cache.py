from django.core.management.base import BaseCommand
from tqdm import tqdm

from articles import warm
from articles.tasks import warm_cache_task


class Command(BaseCommand):
    help = "Fill the cache tiers with the pages readers ask for first (run on deploy)."

    def add_arguments(self, parser):
        parser.add_argument("--async", action="store_true", dest="run_async", help="enqueue the Celery task and return")

    def handle(self, *args, run_async=False, verbosity=1, **options):
        if run_async:
            result = warm_cache_task.delay()
            self.stdout.write(f"warm_cache: queued as task {result.id}")
            return
        quiet = verbosity == 0

        def progress(paths):
            return tqdm(paths, desc="warm_cache", unit="page", disable=quiet, file=self.stderr._out)

        try:
            report = warm.warm_cache(progress=progress)
        except warm.WarmCacheLocked as exc:
            # Not an error: the run holding the lock warms the same pages.
            self.stderr.write(f"warm_cache: skipped, {exc}")
            return
        if not quiet:
            sources = ", ".join(f"{k} {v}" for k, v in sorted(report["by_source"].items()))
            statuses = ", ".join(f"{k}: {v}" for k, v in sorted(report["by_status"].items()))
            self.stdout.write(f"warm_cache: {report['paths']} pages in {report['seconds']}s ({sources}; status {statuses})")
