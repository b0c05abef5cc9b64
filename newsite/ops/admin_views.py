"""The admin "Cache" page (/admin/cache/, staff only): hit ratio per tier and key prefix as a
server-side SVG chart, the outbox backlog, recent invalidations (the latest purge outbox rows,
cluster-wide) and a form to purge tags through caching.invalidate_tags_on_commit - the same
path as every write: CDN outbox rows in the transaction, L2 and every L1 after commit.

The numbers come from newsite.ops.hitratios and newsite.ops.cachestats: all processes since
start when prometheus-client runs in multiprocess mode (gunicorn), else this process; plus this
process's last 5 minutes.
Template: newsite/ops/templates/ops/admin_cache.html.
"""

from __future__ import annotations

import re

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

import caching
from articles.permissions import can_purge_cache
from newsite.ops import cachestats, hitratios
from newsite.ops.logs import log_event

TAG_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")
MAX_TAGS = 50


class PurgeTagsForm(forms.Form):
    tags = forms.CharField(
        label="Tags",
        max_length=4000,
        help_text='Space- or comma-separated, as in Surrogate-Key: e.g. "article:42 feed:home".',
        widget=forms.TextInput(attrs={"size": 60, "autocomplete": "off"}),
    )

    def clean_tags(self) -> list[str]:
        tags = sorted({t for t in re.split(r"[\s,]+", self.cleaned_data["tags"]) if t})
        if not tags:
            raise forms.ValidationError("Give at least one tag.")
        if len(tags) > MAX_TAGS:
            raise forms.ValidationError(f"At most {MAX_TAGS} tags at a time.")
        bad = [t for t in tags if not TAG_RE.match(t)]
        if bad:
            raise forms.ValidationError(f"Not a tag: {', '.join(bad[:5])} (letters, digits, _ . : - only).")
        return tags


def purge_tags(tags: list[str], *, user) -> frozenset[str]:
    """Invalidate `tags` in every tier (outbox rows now, app tiers after commit)."""
    with transaction.atomic():
        tagset = caching.invalidate_tags_on_commit(tags)
    log_event("admin_purge", user=getattr(user, "username", "?"), count=len(tagset), tags=tagset)
    return tagset


# --- the chart ---------------------------------------------------------------------------------

BAR_H, GAP, LABEL_W, PLOT_W, TOP = 12, 10, 190, 420, 34
VALUE_W = 150  # right of the plot: "100.0% of 1234567" at 11 px fits (70 cut it off, issue 33)
COLOURS = {"l1": "#2e7d32", "l2": "#1565c0"}


def hit_ratio_svg(summary: dict | None, *, title: str) -> str:
    """A horizontal grouped bar chart (L1 and L2 hit ratio per prefix, "all" first), as SVG
    markup built here: no script, no external asset. Labels are escaped."""
    rows = []
    if summary:
        rows.append(("all", summary["tiers"]))
        rows += [(name, data) for name, data in summary["prefixes"].items()]
    group_h = 2 * BAR_H + GAP
    height = TOP + max(1, len(rows)) * group_h + 30
    width = LABEL_W + PLOT_W + VALUE_W
    parts = [
        format_html(
            '<svg xmlns="http://www.w3.org/2000/svg" class="cache-chart" role="img" width="{}" height="{}" '
            'viewBox="0 0 {} {}" font-family="sans-serif" font-size="11"><title>{}</title>',
            width, height, width, height, title,
        ),
        format_html('<text x="0" y="14" font-size="13" font-weight="bold">{}</text>', title),
    ]
    # legend and the 0 / 50 / 100 % grid
    for i, tier in enumerate(("l1", "l2")):
        x = LABEL_W + i * 90
        parts.append(format_html(
            '<rect x="{}" y="20" width="10" height="10" fill="{}"/><text x="{}" y="29">{} hit ratio</text>',
            x, COLOURS[tier], x + 14, tier.upper(),
        ))
    for pct in (0, 50, 100):
        x = LABEL_W + PLOT_W * pct / 100
        parts.append(format_html(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#ccc"/><text x="{}" y="{}" text-anchor="middle">{}%</text>',
            x, TOP, x, height - 24, x, height - 10, pct,
        ))
    if not rows:
        parts.append(format_html('<text x="{}" y="{}" fill="#666">no cache traffic yet</text>', LABEL_W + 10, TOP + 16))
    for index, (name, data) in enumerate(rows):
        y = TOP + index * group_h
        parts.append(format_html(
            '<text x="{}" y="{}" text-anchor="end">{}</text>', LABEL_W - 8, y + BAR_H + 4, name[:32]
        ))
        for j, tier in enumerate(("l1", "l2")):
            tier_data = data.get(tier, {})
            ratio = tier_data.get("hit_ratio")
            lookups = sum(v for k, v in tier_data.items() if k != "hit_ratio")
            by = y + j * BAR_H
            parts.append(format_html(
                '<rect class="track" x="{}" y="{}" width="{}" height="{}" fill="#f2f2f2"/>',
                LABEL_W, by, PLOT_W, BAR_H - 2,
            ))
            if ratio is not None:
                parts.append(format_html(
                    '<rect class="bar bar-{}" x="{}" y="{}" width="{}" height="{}" fill="{}">'
                    "<title>{} {}: {}% of {} lookups</title></rect>",
                    tier, LABEL_W, by, round(PLOT_W * ratio, 1), BAR_H - 2, COLOURS[tier],
                    name, tier.upper(), round(ratio * 100, 1), lookups,
                ))
            label = "-" if ratio is None else f"{ratio * 100:.1f}% of {lookups}"
            parts.append(format_html('<text x="{}" y="{}">{}</text>', LABEL_W + PLOT_W + 6, by + BAR_H - 3, label))
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every part above is format_html output (escaped)


# --- the freshness chart -------------------------------------------------------------------------

FRESH_COLOURS = {"p50": "#90caf9", "p99": "#1565c0", "canary": "#2e7d32", "stale": "#c62828"}
LOG_MIN, LOG_MAX = 0.001, 100.0  # the x axis: 1 ms .. 100 s, log scale
TICKS = ((0.001, "1 ms"), (0.01, "10 ms"), (0.1, "100 ms"), (1.0, "1 s"), (10.0, "10 s"), (100.0, "100 s"))


def _log_x(seconds: float) -> float:
    import math

    seconds = min(max(seconds, LOG_MIN), LOG_MAX)
    return round(LABEL_W + PLOT_W * math.log10(seconds / LOG_MIN) / math.log10(LOG_MAX / LOG_MIN), 1)


def _seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds == float("inf"):
        return "> 30 s"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def freshness_svg(lag: dict, canary_state, *, title: str) -> str:
    """Commit -> invalidated per stage (p50 and p99 bars of the lag histograms: l2, l1, cdn) and
    the freshness canary per tier (commit -> the tier showed the new value, with the canary's
    age), on one log-scale axis, as SVG built here (escaped, no script)."""
    rows: list[tuple[str, list[tuple[str, float | None]], str]] = []
    for stage in ("l2", "l1", "cdn"):
        data = lag.get(stage, {})
        label = f"p50 {_seconds_text(data.get('p50'))}, p99 {_seconds_text(data.get('p99'))} ({data.get('count', 0)})"
        rows.append((f"lag {stage}", [("p50", data.get("p50")), ("p99", data.get("p99"))], label))
    tiers = canary_state.get("tiers", {}) if isinstance(canary_state, dict) else {}
    failed = set(canary_state.get("failed", [])) if isinstance(canary_state, dict) else set()
    for name, tier in tiers.items():
        colour = "stale" if name in failed or not tier.get("fresh") else "canary"
        label = f"{_seconds_text(tier.get('seconds'))}, age {tier.get('age_seconds', 0):.0f} s"
        if name in failed:
            label += " - STALE"
        rows.append((f"canary {name}", [(colour, tier.get("seconds") or (LOG_MAX if colour == "stale" else None))],
                     label))
    height = TOP + len(rows) * (BAR_H * 2 + GAP) + 46
    width = LABEL_W + PLOT_W + 190
    parts = [
        format_html(
            '<svg xmlns="http://www.w3.org/2000/svg" class="cache-chart freshness-chart" role="img" width="{}" '
            'height="{}" viewBox="0 0 {} {}" font-family="sans-serif" font-size="11"><title>{}</title>',
            width, height, width, height, title,
        ),
        format_html('<text x="0" y="14" font-size="13" font-weight="bold">{}</text>', title),
    ]
    for i, (key, text) in enumerate((("p50", "lag p50"), ("p99", "lag p99"), ("canary", "canary fresh"),
                                     ("stale", "canary stale"))):
        x = LABEL_W + i * 100
        parts.append(format_html(
            '<rect x="{}" y="20" width="10" height="10" fill="{}"/><text x="{}" y="29">{}</text>',
            x, FRESH_COLOURS[key], x + 14, text,
        ))
    for seconds, text in TICKS:
        x = _log_x(seconds)
        parts.append(format_html(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#ccc"/><text x="{}" y="{}" text-anchor="middle">{}</text>',
            x, TOP, x, height - 30, x, height - 16, text,
        ))
    if not tiers:
        state = canary_state if isinstance(canary_state, str) else canary_state.get("error", "no data")
        parts.append(format_html(
            '<text x="0" y="{}" fill="#666">canary: {}</text>', height - 2, state,
        ))
    for index, (name, bars, label) in enumerate(rows):
        y = TOP + index * (BAR_H * 2 + GAP)
        parts.append(format_html('<text x="{}" y="{}" text-anchor="end">{}</text>', LABEL_W - 8, y + BAR_H + 4, name))
        parts.append(format_html(
            '<rect class="track" x="{}" y="{}" width="{}" height="{}" fill="#f2f2f2"/>',
            LABEL_W, y, PLOT_W, BAR_H * 2 - 2,
        ))
        for j, (key, seconds) in enumerate(bars):
            if seconds is None:
                continue
            bar_h = BAR_H * 2 - 2 if len(bars) == 1 else BAR_H - 1
            parts.append(format_html(
                '<rect class="bar fresh-{}" x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{} {}: {}</title></rect>',
                key, LABEL_W, y + j * BAR_H, max(1.0, _log_x(seconds) - LABEL_W), bar_h, FRESH_COLOURS[key],
                name, key, _seconds_text(seconds),
            ))
        parts.append(format_html('<text x="{}" y="{}">{}</text>', LABEL_W + PLOT_W + 6, y + BAR_H + 4, label))
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every part above is format_html output (escaped)


# --- the view ----------------------------------------------------------------------------------


def _cache_page(request):
    may_purge = can_purge_cache(request.user)
    if request.method == "POST" and not may_purge:
        raise PermissionDenied("Purging caches needs the articles.purge_cache permission.")
    if request.method == "POST":
        form = PurgeTagsForm(request.POST)
        if form.is_valid():
            tagset = purge_tags(form.cleaned_data["tags"], user=request.user)
            messages.success(request, f"Purged {len(tagset)} tag(s) from every tier: {' '.join(sorted(tagset))}")
            return redirect(request.path)
    else:
        form = PurgeTagsForm()
    cluster = hitratios.cluster_since_start()
    recent = hitratios.window(300)
    since_start = cluster if cluster is not None else hitratios.process_since_start()
    scope = "all processes" if cluster is not None else "this process"
    report = cachestats.report()
    context = {
        **admin.site.each_context(request),
        "title": "Cache",
        "chart_since_start": hit_ratio_svg(since_start, title=f"Hit ratio since start ({scope})"),
        "chart_recent": hit_ratio_svg(recent, title=f"Hit ratio, last {int(recent['seconds'])} s (this process)"),
        "chart_freshness": freshness_svg(
            cachestats.invalidation_lag(), report["canary"],
            title=f"Freshness: commit -> invalidated (since start, {scope}) and the canary",
        ),
        "canary": report["canary"],
        "outbox": report["outbox"],
        "recent_purges": cachestats.recent_purges(20),
        "l1": report["l1"],
        "breaker": report["breaker"],
        "warm_cache": report["warm_cache"],
        "pid": report["pid"],
        "form": form,
        "can_purge": may_purge,
    }
    return TemplateResponse(request, "ops/admin_cache.html", context)


# admin_view: staff only (others are redirected to the admin login), CSRF-protected, never cached.
cache_page = admin.site.admin_view(_cache_page)
