"""`python -m bench.images --edge URL --database-url URL`: what the browser tier costs (issue 32).

Against a running stack (`make up`: the web server with Varnish in front), read-only:

1. Bytes per article page: headless Chromium (tests/support.chromium, Debian's chromium) opens the
   most read article through the edge at 390 px (1x and 3x) and 1280 px (1x and 2x) and reads
   the browser's own resource timing: the HTML, and the hero rendition it chose from `srcset`.
   Screenshots of the 1x views go to --screenshots.
2. Edge hit ratio on images under the Zipf workload of `make bench` (92% of reads on 5% of the
   published articles, bench/loadgen.zipf_exponent): --requests reads of the hero a 1280 px
   browser fetches (the 800 px WebP), through the edge, counted by X-Cache-Edge.

Writes a Markdown report (stdout, and --out)."""

from __future__ import annotations

import argparse
import base64
import bisect
import gzip
import itertools
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import requests

from bench.loadgen import zipf_exponent

VIEWS = [  # (label, width, height, device pixel ratio, mobile)
    ("390 px, 1x", 390, 844, 1, True),
    ("390 px, 3x (a phone)", 390, 844, 3, True),
    ("1280 px, 1x", 1280, 900, 1, False),
    ("1280 px, 2x", 1280, 900, 2, False),
]


def published(database_url: str) -> list[tuple[int, str, list]]:
    """(id, slug, renditions) of the live articles, most read first."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id, slug, hero_renditions FROM articles_article WHERE status = 'published' AND published_at <= now()"
            " AND (expires_at IS NULL OR expires_at > now()) ORDER BY view_count DESC, id").fetchall()
    return [(i, slug, renditions) for i, slug, renditions in rows]


def page_bytes(edge: str, slug: str, screenshots: Path | None) -> list[dict]:
    from tests.support import chromium

    results = []
    for label, width, height, ratio, mobile in VIEWS:
        with chromium(width=width, height=height) as driver:
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": height, "deviceScaleFactor": ratio, "mobile": mobile})
            driver.get(f"{edge}/articles/{slug}/")
            driver.execute_script("return document.querySelector('figure.hero img').decode()")
            time.sleep(0.5)
            entries = driver.execute_script(
                "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
                ".map(e => ({name: e.name, type: e.initiatorType, transfer: e.transferSize,"
                " body: e.encodedBodySize, decoded: e.decodedBodySize}))")
            chosen = driver.execute_script("return document.querySelector('figure.hero img').currentSrc")
            if screenshots is not None and ratio == 1:
                shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
                screenshots.mkdir(parents=True, exist_ok=True)
                (screenshots / f"article-hero-{width}.png").write_bytes(base64.b64decode(shot["data"]))
        html = entries[0]
        image = next((e for e in entries if e["name"] == chosen), None)
        results.append({"view": label, "html": html["decoded"], "html_wire": html["body"], "image": chosen,
                        "image_bytes": image["body"] if image else None})
    return results


def html_gzip_bytes(edge: str, slug: str) -> int:
    return len(gzip.compress(requests.get(f"{edge}/articles/{slug}/", timeout=30).content, 6))


def zipf_reads(edge: str, articles: list, requests_count: int, seed: int = 32) -> dict:
    n = len(articles)
    s = zipf_exponent(n)
    ranked = list(articles)
    random.Random(8).shuffle(ranked)  # heat is not by recency (bench/loadgen.write_ranked_ids)
    cumulative = list(itertools.accumulate(r ** -s for r in range(1, n + 1)))
    rng = random.Random(seed)
    picks = [ranked[bisect.bisect_left(cumulative, rng.random() * cumulative[-1])] for _ in range(requests_count)]

    def hero_800_webp(renditions):
        return next(r["name"] for r in renditions if r["width"] == 800 and r["type"] == "image/webp")

    urls = [f"{edge}/media/{hero_800_webp(renditions)}" for _, _, renditions in picks]
    session = requests.Session()

    def fetch(url):
        response = session.get(url, timeout=30)
        return response.headers.get("X-Cache-Edge"), len(response.content)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(fetch, urls))
    hits = sum(1 for cache, _ in answers if cache == "HIT")
    distinct_articles = len({article_id for article_id, _, _ in picks})
    return {"requests": requests_count, "articles": n, "exponent": s, "hits": hits, "distinct_urls": len(set(urls)),
            "distinct_articles": distinct_articles, "bytes": sum(size for _, size in answers)}


def report(edge: str, slug: str, pages: list[dict], html_gzip: int, zipf: dict) -> str:
    lines = [f"# Browser tier: bytes per article page and image hits at the edge ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
             "", f"`python -m bench.images`, edge {edge}, article `{slug}` (the most read).", "",
             "| view | HTML (decoded) | HTML (gzip -6, what nginx sends) | hero chosen by the browser | hero bytes | page total (gzip HTML + hero) |",
             "|---|---:|---:|---|---:|---:|"]
    for p in pages:
        image = p["image"].rsplit("/", 1)[-1]
        total = html_gzip + (p["image_bytes"] or 0)
        lines.append(f"| {p['view']} | {p['html']:,} | {html_gzip:,} | `{image}` | {p['image_bytes'] or 0:,} | {total:,} |")
    hit_ratio = zipf["hits"] / zipf["requests"]
    unique_ratio = 1 - zipf["distinct_articles"] / zipf["requests"]
    lines += ["", f"Zipf over {zipf['articles']:,} live articles (s = {zipf['exponent']:.3f}: 92% of reads on 5% of them), "
              f"{zipf['requests']:,} reads of the 800 px WebP hero through the edge, {zipf['bytes']:,} bytes:", "",
              "| measure | value |", "|---|---:|",
              f"| edge hits (X-Cache-Edge: HIT), demo pictures (shared: {zipf['distinct_urls']} distinct files) | {hit_ratio:.2%} |",
              f"| the same reads if every article had its own picture (immutable: only the first read of each misses) "
              f"| {unique_ratio:.2%} ({zipf['distinct_articles']:,} distinct articles) |"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edge", default="http://127.0.0.1:8080")
    parser.add_argument("--database-url", default="postgres:///newsite")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--screenshots", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    articles = [a for a in published(args.database_url) if a[2]]
    slug = articles[0][1]
    pages = page_bytes(args.edge, slug, args.screenshots)
    text = report(args.edge, slug, pages, html_gzip_bytes(args.edge, slug), zipf_reads(args.edge, articles, args.requests))
    print(text)
    if args.out:
        args.out.write_text(text)
    print(json.dumps(pages), file=__import__("sys").stderr)


if __name__ == "__main__":
    main()
