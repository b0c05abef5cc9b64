"""`manage.py seed_demo --articles N [--seed S] [--if-empty | --flush]`: realistic demo data, fast.

Deterministic for a seed: titles, slugs, authors, categories, counts and dates (as offsets from
an anchor, the current hour) all come from one `random.Random(seed)`.

Hero images are drawn locally (articles/demo_data.hero_picture: no network), a few dozen shared
by all the articles, stored with their renditions once per MEDIA_ROOT (articles/images.py; a
later seed finds them and draws nothing).

Bulk all the way: users, authors and categories go through `bulk_create`; articles, comments,
likes and follows are written as raw rows (PostgreSQL: psycopg 3 COPY, which fires the
search_vector trigger; elsewhere: executemany). Raw rows send no model signals, so nothing is
purged or enqueued per row; flush your caches after seeding a database that was already served.
"""

import json
import math
import random
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from itertools import islice

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError
from django.core.management.color import no_style
from django.db import connection, transaction
from django.utils import timezone
from django.utils.text import slugify
from tqdm import tqdm

from articles import demo_data, images
from articles.models import Article, Author, Category, Comment, Follow, Like

# With --demo-accounts (`make run` only): password = username, demo-editor a superuser. Without
# it (`make up`, anything production-like) both exist with unusable passwords and no privilege.
EDITOR_USERNAME = "demo-editor"  # + an Author profile
READER_USERNAME = "demo-reader"  # every seeded reader shares its password hash
ZIPF_EXPONENT = 0.7  # popularity of articles: weight = 1 / rank ** s
COMMENTS_PER_ARTICLE = 10
LIKES_PER_ARTICLE = 10
DRAFT_SHARE = 0.05
BATCH = 5000


class Command(BaseCommand):
    help = "Seed deterministic, realistic demo data (authors, readers, articles, comments, likes)."

    def add_arguments(self, parser):
        parser.add_argument("--articles", type=int, default=2000, help="number of articles (default 2000)")
        parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
        parser.add_argument("--if-empty", action="store_true", help="do nothing when any article exists")
        parser.add_argument(
            "--demo-accounts",
            action="store_true",
            help="log-in accounts with known passwords (demo-editor: superuser, demo-reader), for "
            "`make run` only; never on a reachable site",
        )
        parser.add_argument(
            "--flush",
            action="store_true",
            help="delete existing demo content first (articles, comments, likes, follows, authors, "
            "categories, non-staff users)",
        )

    def handle(self, *args, articles, seed, if_empty, flush, demo_accounts, verbosity, **options):
        if not 1 <= articles <= 1_000_000:
            raise CommandError("--articles must be between 1 and 1,000,000")
        existing = Article.objects.count()
        if existing and if_empty:
            if verbosity:
                self.stdout.write(f"seed_demo: {existing} articles already exist; nothing to do (--if-empty).")
            return
        if existing and not flush:
            raise CommandError(
                f"The database already holds {existing} articles; seeding would append to them. "
                "Rerun with --flush to replace the demo content, or --if-empty to skip."
            )
        started = time.monotonic()
        seeder = Seeder(articles=articles, seed=seed, progress=verbosity > 0, demo_accounts=demo_accounts)
        with transaction.atomic():
            if flush:
                seeder.flush()
            counts = seeder.run()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                for model in (get_user_model(), Author, Category, Article, Comment, Like, Follow):
                    cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
        if verbosity:
            summary = ", ".join(f"{value:,} {name}" for name, value in counts.items())
            self.stdout.write(f"seed_demo: {summary} in {time.monotonic() - started:.1f}s (seed {seed}).")


class RowWriter:
    """Appends raw rows to one table: COPY on PostgreSQL, executemany elsewhere."""

    def __init__(self, *, progress: bool):
        self.progress = progress
        self.postgres = connection.vendor == "postgresql"

    def write(self, model, columns: Sequence[str], rows: Iterable[tuple], *, total: int, desc: str) -> int:
        """Writes the rows and returns how many; costs one COPY (or one executemany per batch)."""
        qn = connection.ops.quote_name
        table = qn(model._meta.db_table)
        column_sql = ", ".join(qn(c) for c in columns)
        written = 0
        with tqdm(total=total, desc=desc, unit=" rows", file=sys.stderr, disable=not self.progress,
                  mininterval=0.5) as bar, connection.cursor() as cursor:
            if self.postgres:
                with cursor.copy(f"COPY {table} ({column_sql}) FROM STDIN") as copy:
                    for batch in _batched(rows, BATCH):
                        for row in batch:
                            copy.write_row(row)
                        written += len(batch)
                        bar.update(len(batch))
            else:
                sql = f"INSERT INTO {table} ({column_sql}) VALUES ({', '.join(['%s'] * len(columns))})"
                adapt = connection.ops.adapt_datetimefield_value
                for batch in _batched(rows, BATCH):
                    cursor.executemany(
                        sql, [tuple(adapt(v) if isinstance(v, datetime) else v for v in row) for row in batch]
                    )
                    written += len(batch)
                    bar.update(len(batch))
        return written


class Seeder:
    """Builds the demo data set. Every random draw comes from `self.rng`, in a fixed order."""

    def __init__(self, *, articles: int, seed: int, progress: bool, demo_accounts: bool = False):
        self.n = articles
        self.demo_accounts = demo_accounts
        self.rng = random.Random(seed)
        self.progress = progress
        self.writer = RowWriter(progress=progress)
        self.anchor = timezone.now().replace(minute=0, second=0, microsecond=0)
        self.n_authors = min(400, max(5, articles // 250))
        self.n_readers = min(5000, max(50, articles // 10))

    # --- flush -------------------------------------------------------------------------------

    def flush(self) -> None:
        """Deletes the demo content. Raw DELETEs: no per-row signals, no objects loaded."""
        with connection.cursor() as cursor:
            for model in (Like, Comment, Follow, Article, Author, Category):
                cursor.execute(f"DELETE FROM {connection.ops.quote_name(model._meta.db_table)}")
        get_user_model().objects.filter(is_staff=False, is_superuser=False).delete()

    # --- the run -----------------------------------------------------------------------------

    def run(self) -> dict[str, int]:
        categories = self._categories()
        reader_hash = self._demo_users()
        authors = self._authors(categories)
        reader_ids = self._readers(reader_hash)
        plan = self._articles(categories, authors, self._pictures())
        counts = {
            "categories": len(categories),
            "authors": len(authors),
            "readers": len(reader_ids),
            "articles": len(plan),
            "published": sum(1 for a in plan if a.published_at),
            "breaking": sum(1 for a in plan if a.is_breaking),
        }
        counts["comments"] = self._comments(plan, reader_ids)
        counts["likes"] = self._likes(plan, reader_ids)
        counts["follows"] = self._follows(reader_ids, categories, authors)
        self._reset_sequences()
        return counts

    def _categories(self) -> list[tuple[Category, int]]:
        """Returns (category, share) pairs."""
        objs = Category.objects.bulk_create(Category(name=name, slug=slug) for name, slug, _ in demo_data.CATEGORIES)
        return [(obj, share) for obj, (_, _, share) in zip(objs, demo_data.CATEGORIES, strict=True)]

    def _demo_users(self) -> str:
        """Creates (or resets) demo-editor and demo-reader; returns demo-reader's password hash.
        Known passwords and privileges only with --demo-accounts; the public bio never says any."""
        user_model = get_user_model()
        accounts = self.demo_accounts
        editor, _ = user_model.objects.get_or_create(username=EDITOR_USERNAME)
        editor.first_name, editor.last_name, editor.email = "Demo", "Editor", "demo-editor@newsite.example"
        editor.is_staff = editor.is_superuser = accounts
        editor.is_active = True
        editor.set_password(EDITOR_USERNAME if accounts else None)
        editor.save()
        self.editor_author, _ = Author.objects.update_or_create(
            user=editor,
            defaults={
                "name": "Demo Editor",
                "bio": "Demo Editor runs the newsroom's front page and its corrections desk.",
                "avatar_url": f"https://i.pravatar.cc/300?u={EDITOR_USERNAME}",
            },
        )
        reader, _ = user_model.objects.get_or_create(username=READER_USERNAME)
        reader.first_name, reader.last_name, reader.email = "Demo", "Reader", "demo-reader@newsite.example"
        reader.set_password(READER_USERNAME if accounts else None)  # the only other hash: readers reuse it
        reader.save()
        return reader.password

    def _authors(self, categories) -> list[tuple[Author, int, float]]:
        """Returns (author, primary category index, productivity weight) triples."""
        rng, user_model = self.rng, get_user_model()
        unusable = make_password(None)
        names, usernames, taken = [], [], set()
        for _ in range(self.n_authors):
            name = demo_data.person_name(rng)
            username = base = slugify(name)
            suffix = 2
            while username in taken:
                username, suffix = f"{base}-{suffix}", suffix + 1
            taken.add(username)
            names.append(name)
            usernames.append(username)
        users = user_model.objects.bulk_create(
            user_model(
                username=username, first_name=name.split(" ")[0], last_name=name.split(" ")[1],
                email=f"{username}@newsite.example", password=unusable,
                date_joined=self.anchor - timedelta(days=rng.uniform(400, 3000)),
            )
            for name, username in zip(names, usernames, strict=True)
        )
        objs = []
        for i, (user, name) in enumerate(zip(users, names, strict=True)):
            category = categories[i % len(categories)][0]
            objs.append(Author(
                user_id=user.pk, name=name,
                bio=demo_data.author_bio(rng, name, category.name, category.slug),
                avatar_url=f"https://i.pravatar.cc/300?u={user.username}",
            ))
        authors = Author.objects.bulk_create(objs)
        result = [(a, i % len(categories), 1.0 / (1 + rng.random() * 4)) for i, a in enumerate(authors)]
        result.append((self.editor_author, 0, 0.2))
        return result

    def _readers(self, password_hash: str) -> list[int]:
        rng, user_model = self.rng, get_user_model()
        users = []
        for i in range(1, self.n_readers + 1):
            first, last = rng.choice(demo_data.FIRST_NAMES), rng.choice(demo_data.LAST_NAMES)
            users.append(user_model(
                username=f"reader-{i:05d}", first_name=first, last_name=last,
                email=f"reader-{i:05d}@newsite.example", password=password_hash,
                date_joined=self.anchor - timedelta(days=rng.uniform(1, 1500)),
            ))
        with tqdm(total=len(users), desc="readers", unit=" rows", file=sys.stderr, disable=not self.progress) as bar:
            created = []
            for batch in _batched(users, 1000):
                created += user_model.objects.bulk_create(batch)
                bar.update(len(batch))
        return [u.pk for u in created]

    def _pictures(self) -> list[images.StoredHero]:
        """The demo hero images (one per ~50 articles, 3 to DEMO_PICTURES), drawn and stored on
        the first seed of this MEDIA_ROOT, found again by later ones."""
        count = min(demo_data.DEMO_PICTURES, max(3, self.n // 50))
        return [demo_picture(index) for index in tqdm(range(count), desc="pictures", unit=" images", file=sys.stderr,
                                                      disable=not self.progress)]

    def _articles(self, categories, authors, pictures) -> list["PlannedArticle"]:
        """Plans every article (ids, dates, popularity), then writes them in id order."""
        rng, n, anchor = self.rng, self.n, self.anchor
        n_recent = min(n, 40, max(5, n // 1200))  # published within the last 5 hours
        n_breaking = min(n_recent, max(2, n_recent // 3))
        older = range(n_recent, n)
        drafts = set(rng.sample(older, min(len(older), max(1, round(n * DRAFT_SHARE)))))
        plan = []
        for i in range(n):
            if i < n_recent:
                plan.append(PlannedArticle(anchor - timedelta(seconds=rng.uniform(60, 5 * 3600)), True))
                plan[-1].is_breaking = i < n_breaking
            elif i in drafts:
                plan.append(PlannedArticle(anchor - timedelta(days=rng.uniform(0.3, 30)), False))
            else:
                plan.append(PlannedArticle(anchor - timedelta(days=rng.uniform(0.25, 365)), True))
        plan.sort(key=lambda a: a.created)
        base_id = _next_id(Article)
        for offset, article in enumerate(plan):
            article.id = base_id + offset
        # Popularity: Zipf over a random ranking, boosted for the last couple of days' stories.
        ranks = list(range(1, n + 1))
        rng.shuffle(ranks)
        for article, rank in zip(plan, ranks, strict=True):
            if article.published_at:
                age_days = (anchor - article.published_at).total_seconds() / 86400
                article.weight = rank ** -ZIPF_EXPONENT * (1 + 4 * math.exp(-age_days / 2))
        top = max(a.weight for a in plan) or 1.0

        category_weights = [share for _, share in categories]
        by_category: dict[int, list[tuple[Author, float]]] = {}
        for author, cat_index, weight in authors:
            by_category.setdefault(cat_index, []).append((author, weight))
        all_authors = [a for a, _, _ in authors]
        all_weights = [w for _, _, w in authors]
        pool = demo_data.SentencePool(rng)
        slugs: set[str] = set()
        hero_columns = [(picture.name, json.dumps(picture.renditions)) for picture in pictures]

        def rows() -> Iterator[tuple]:
            for article in plan:
                cat_index = rng.choices(range(len(categories)), category_weights)[0]
                category = categories[cat_index][0]
                beat = by_category.get(cat_index)
                if beat and rng.random() < 0.8:
                    author = rng.choices([a for a, _ in beat], [w for _, w in beat])[0]
                else:
                    author = rng.choices(all_authors, all_weights)[0]
                title = demo_data.headline(rng, category.slug)
                slug = base = slugify(title)[:200].strip("-")
                suffix = 2
                while slug in slugs:
                    slug, suffix = f"{base}-{suffix}", suffix + 1
                slugs.add(slug)
                published_at = article.published_at
                if published_at:
                    created_at = published_at - timedelta(minutes=rng.uniform(10, 600))
                    edited = rng.random() < 0.2
                    updated_at = published_at + (anchor - published_at) * (rng.random() * 0.1 if edited else 0)
                    views = int(2_000_000 * article.weight / top * rng.uniform(0.8, 1.2)) + rng.randint(0, 50)
                else:
                    created_at = updated_at = article.created
                    views = 0
                yield (
                    article.id, title, slug, pool.excerpt(rng, category.slug), pool.body(rng, category.slug),
                    author.pk, category.pk, "published" if published_at else "draft", published_at,
                    created_at, updated_at, article.is_breaking, "",
                    *hero_columns[rng.randrange(10**6) % len(hero_columns)], views, 1, "[]",
                )

        columns = ["id", "title", "slug", "excerpt", "body", "author_id", "category_id", "status",
                   "published_at", "created_at", "updated_at", "is_breaking", "hero_image_url",
                   "hero_image", "hero_renditions", "view_count", "version", "corrections"]
        self.writer.write(Article, columns, rows(), total=n, desc="articles")
        return plan

    def _expected_counts(self, plan, per_article: float, cap: int) -> Iterator[tuple["PlannedArticle", int]]:
        """Zipf-skewed counts that add up to about per_article * len(plan), published only."""
        total_weight = sum(a.weight for a in plan) or 1.0
        scale = per_article * len(plan) / total_weight
        for article in plan:
            if article.published_at:
                yield article, min(cap, int(article.weight * scale + self.rng.random()))

    def _event_time(self, published_at: datetime) -> datetime:
        """A moment between publication and the anchor, skewed towards publication."""
        return published_at + (self.anchor - published_at) * (self.rng.random() ** 3)

    def _comments(self, plan, reader_ids: list[int]) -> int:
        rng, n_readers = self.rng, len(reader_ids)
        counts = list(self._expected_counts(plan, COMMENTS_PER_ARTICLE, 10**9))

        def rows() -> Iterator[tuple]:
            for article, k in counts:
                for _ in range(k):
                    # rng.random() ** 2 skews towards the first readers: a core of frequent commenters.
                    user_id = reader_ids[int(n_readers * rng.random() ** 2)]
                    yield article.id, user_id, demo_data.comment_body(rng), self._event_time(article.published_at)

        total = sum(k for _, k in counts)
        return self.writer.write(Comment, ["article_id", "user_id", "body", "created_at"], rows(),
                                 total=total, desc="comments")

    def _likes(self, plan, reader_ids: list[int]) -> int:
        rng, n_readers = self.rng, len(reader_ids)
        counts = list(self._expected_counts(plan, LIKES_PER_ARTICLE, n_readers))

        def rows() -> Iterator[tuple]:
            for article, k in counts:
                for index in rng.sample(range(n_readers), k):  # distinct readers: one like each
                    yield article.id, reader_ids[index], self._event_time(article.published_at)

        total = sum(k for _, k in counts)
        return self.writer.write(Like, ["article_id", "user_id", "created_at"], rows(), total=total, desc="likes")

    def _follows(self, reader_ids: list[int], categories, authors) -> int:
        rng = self.rng
        category_ids = [c.pk for c, _ in categories]
        author_ids = [a.pk for a, _, _ in authors]

        def rows() -> Iterator[tuple]:
            for user_id in reader_ids:
                joined = self.anchor - timedelta(days=rng.uniform(1, 365))
                for category_id in rng.sample(category_ids, rng.randint(0, 3)):
                    yield user_id, None, category_id, joined
                for author_id in rng.sample(author_ids, min(len(author_ids), rng.randint(0, 2))):
                    yield user_id, author_id, None, joined

        follows = list(rows())
        return self.writer.write(Follow, ["user_id", "author_id", "category_id", "created_at"], follows,
                                 total=len(follows), desc="follows")

    def _reset_sequences(self) -> None:
        """After raw inserts with explicit ids, point the id sequences past the max id (sqlsequencereset)."""
        models = [get_user_model(), Author, Category, Article, Comment, Like, Follow]
        statements = connection.ops.sequence_reset_sql(no_style(), models)
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)


class PlannedArticle:
    __slots__ = ("created", "published_at", "is_breaking", "id", "weight")

    def __init__(self, created: datetime, published: bool):
        self.created = created
        self.published_at = created if published else None
        self.is_breaking = False
        self.id = 0
        self.weight = 0.0


def demo_picture(index: int) -> images.StoredHero:
    """Demo picture `index` stored with its renditions (articles/images.py), or found: a small
    JSON file per picture remembers what storing it gave, so a re-seed draws and encodes nothing."""
    record = f"{images.FOLDER}/demo/picture-{demo_data.PICTURES_VERSION}-{images.RECIPE}-{index}.json"
    if default_storage.exists(record):
        with default_storage.open(record) as stored:
            return images.StoredHero(**json.load(stored))
    content = demo_data.hero_picture_jpeg(index)
    width, height = demo_data.PICTURE_SIZE
    hero = images.store_hero(images.CheckedUpload(content=content, format="JPEG", width=width, height=height))
    default_storage.save(record, ContentFile(json.dumps({"name": hero.name, "renditions": hero.renditions})))
    return hero


def _next_id(model) -> int:
    """The first id to use for explicit-id inserts: the sequence's next value on PostgreSQL (ids are
    never reused after a --flush), max(id) + 1 elsewhere."""
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [table])
        else:
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {connection.ops.quote_name(table)}")
        return cursor.fetchone()[0]


def _batched(iterable: Iterable, size: int) -> Iterator[list]:
    iterator = iter(iterable)
    while batch := list(islice(iterator, size)):
        yield batch
