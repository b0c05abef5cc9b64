from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from caching import invalidate_tags_on_commit


class Command(BaseCommand):
    help = "Invalidate cache tags by hand in every tier: each process's L1, L2 and every CDN (via the outbox)."

    def add_arguments(self, parser):
        parser.add_argument("tags", nargs="+", help="tags such as article:12 feed:home category:3")

    def handle(self, *args, tags, **options):
        tags = [t.strip() for t in tags if t.strip()]
        if not tags or any(" " in t or "," in t for t in tags):
            raise CommandError("give tags as separate words, e.g. article:12 feed:home")
        with transaction.atomic():
            invalidate_tags_on_commit(tags)
        self.stdout.write(f"invalidated {len(tags)} tag(s): {' '.join(sorted(tags))}")
