from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from articles import warm
from articles.tasks import warm_cache_task


class Command(BaseCommand):
    help = "Fill the cache tiers with the pages readers ask for first (run on deploy)."

    def add_arguments(self, parser):
        parser.add_argument("--async", action="store_true", dest="run_async", help="enqueue the Celery task and return")
        parser.add_argument(
            "--all", action="store_true", dest="all_articles",
            help="also the JSON detail of every published article, in bulk (the long tail)",
        )
        parser.add_argument(
            "--edge", metavar="URL", default=None,
            help="then request every warmed page through the edge at this base URL, the one readers use "
                 "(default: settings.WARM_CACHE_EDGE_URL; '' for none)",
        )
        parser.add_argument(
            "--refresh-within", type=float, default=0.0, metavar="SECONDS",
            help="with --all: also reload the entries whose soft expiry is that close (a periodic run)",
        )

    def handle(self, *args, run_async=False, all_articles=False, refresh_within=0.0, edge=None, verbosity=1,
               **options):
        if refresh_within < 0:
            raise CommandError("--refresh-within must be >= 0")
        if edge:
            try:
                warm.check_edge_url(edge)
            except ValueError as exc:
                raise CommandError(f"--edge: {exc}") from exc
        if run_async:
            result = warm_cache_task.delay(all_articles=all_articles, refresh_within=refresh_within, edge_url=edge)
            self.stdout.write(f"warm_cache: queued as task {result.id}")
            return
        quiet = verbosity == 0
        out = self.stderr._out

        def progress(paths):
            return tqdm(paths, desc="warm_cache", unit="page", disable=quiet, file=out)

        def batches(chunks, total):
            with tqdm(total=total, desc="warm_cache --all", unit="article", disable=quiet, file=out) as bar:
                for chunk in chunks:
                    yield chunk
                    bar.update(len(chunk))

        try:
            report = warm.warm_cache(progress=progress, all_articles=all_articles, refresh_within=refresh_within,
                                     batches=batches, edge_url=edge)
        except warm.WarmCacheLocked as exc:
            # Not an error: the run holding the lock warms the same pages.
            self.stderr.write(f"warm_cache: skipped, {exc}")
            return
        if not quiet:
            sources = ", ".join(f"{k} {v}" for k, v in sorted(report["by_source"].items()))
            statuses = ", ".join(f"{k}: {v}" for k, v in sorted(report["by_status"].items()))
            self.stdout.write(f"warm_cache: {report['paths']} pages in {report['seconds']}s ({sources}; status {statuses})")
            articles = report.get("articles")
            if articles:
                sources = ", ".join(f"{k} {v}" for k, v in sorted(articles["by_source"].items()))
                self.stdout.write(
                    f"warm_cache --all: {articles['articles']} articles in {articles['batches']} batches, "
                    f"{articles.get('seconds', 0)}s ({sources or articles.get('skipped', '')}; "
                    f"refused {articles['refused']}, gone {articles['gone']})"
                )
            through = report.get("edge")
            if through:
                edges = ", ".join(f"{k} {v}" for k, v in sorted(through["by_edge"].items()))
                statuses = ", ".join(f"{k}: {v}" for k, v in sorted(through["by_status"].items()))
                self.stdout.write(f"warm_cache --edge {through['url']}: {through['requests']} pages in "
                                  f"{through['seconds']}s (edge {edges or '-'}; status {statuses or '-'}; "
                                  f"no answer {through['errors']})")
