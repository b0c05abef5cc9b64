# newsite edge: Varnish 7.1 with vmod xkey (Debian: varnish + varnish-modules).
#
# - Objects are indexed by the app's Surrogate-Key tags (copied into xkey); cdn/backends/varnish.py
#   purges them with `PURGE /` + an `xkey: tag tag ...` header (hard) or `xkey-softpurge: ...` (soft).
# - PURGE is accepted only from the `purgers` ACL (localhost). Anything in front of Varnish (nginx)
#   must not forward PURGE: to Varnish, proxied clients look local.
# - Grace: stale-while-revalidate from the response; stale-if-error when a fetch fails.
# - Only the app's public routes are cached (the generated block at the end, rendered from the
#   views' @cache_public policies by `manage.py edge_vcl --write`; a test checks it matches).
#   Their query strings keep only the route's own parameters, sorted, like the app's keys: junk
#   parameters (cache busters, utm_*) never create an object. Every other path is passed.
# - /static/ and /media/ (content-hashed files: Cache-Control immutable, a year) are kept as the
#   app sends them, whatever the query string or cookies; a deploy or a new image changes names,
#   never purges.
# - Cookies ignored on public routes; /admin/, /api/user/, Authorization and every non-public
#   path (/api/docs/ with its CSRF token, /api/schema/, ops) never cached.
# - Surrogate-Key, Cache-Tag and xkey are stripped before the client; X-Cache-Edge: HIT | MISS.
# - A fetch that a purge overtook is not stored as it came: every PURGE records when it began
#   (vmod var), and a response whose fetch began before the newest purge is fetched again
#   (vcl_backend_response): it may have been built before the write that purge is for.
#
# The backend port below is the only line tests and deploy/varnish/run-varnishd.sh rewrite.
vcl 4.1;

import std;
import var;
import xkey;

backend default {
    .host = "127.0.0.1";
    .port = "8000";
    .connect_timeout = 1s;
    .first_byte_timeout = 30s;
    .between_bytes_timeout = 10s;
}

acl purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    if (req.restarts == 0) {
        # Internal flags: never trust them from a client.
        unset req.http.X-Edge-Public;
        unset req.http.X-Edge-Fresh;
        unset req.http.X-Edge-Stale;
        unset req.http.X-Edge-Error-Retry;
        # The freshness canary probes the app's port, never the edge: from a client the header
        # would only make a hot URL uncacheable for a second and show worker pids.
        unset req.http.X-Canary-Probe;
    }

    # One cache entry per host, whatever port the client named.
    if (req.http.Host) {
        set req.http.Host = regsub(req.http.Host, ":[0-9]+$", "");
    }

    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(405, "PURGE not allowed from " + client.ip));
        }
        # Recorded before anything is removed: a fetch in flight now may bring back what this
        # purge removes (its response was built before the write it is for), and the xkey index
        # cannot reach an object still being fetched. vcl_backend_response compares.
        # Microseconds since 1,700,000,000 s (2023-11-14): a REAL is written with 3 decimals (a
        # purge and a fetch of one millisecond would look simultaneous), and VCL integers have
        # 15 digits at most (enough from that origin until 2055).
        set req.http.X-Edge-Purged-At = std.integer(real=(std.real(time=now) - 1700000000.0) * 1000000.0);
        if (std.integer(var.global_get("edge-purged-at"), 0) < std.integer(req.http.X-Edge-Purged-At, 0)) {
            var.global_set("edge-purged-at", req.http.X-Edge-Purged-At);
        }
        if (req.http.xkey) {
            set req.http.X-Edge-Gone = xkey.purge(req.http.xkey);
            return (synth(200, "Purged " + req.http.X-Edge-Gone + " objects"));
        }
        if (req.http.xkey-softpurge) {
            set req.http.X-Edge-Gone = xkey.softpurge(req.http.xkey-softpurge);
            return (synth(200, "Soft-purged " + req.http.X-Edge-Gone + " objects"));
        }
        # No tag header: purge this URL (all its variants).
        return (purge);
    }

    # Ops endpoints are for the operator's network, on the app's own port (Prometheus, load
    # balancer checks): /health/ opens database, Redis and broker connections per request and
    # /health/cache/ and /metrics show internals (issue 28.7). The canary's route stays public.
    if (req.url ~ "^/(health|health/cache|metrics)/?(\?|$)") {
        return (synth(404, "Not Found"));
    }

    if (req.url ~ "^/api/breaking\-news/stream/(\?|$)") {
        # The breaking box's event stream (articles/breaking_stream.py, when an ASGI front mounts
        # it): one long response per reader, never kept. Piped: one worker thread and two file
        # descriptors per open stream, bounded by pipe_timeout (idle; the app sends a comment
        # every 15 s), not by send_timeout as a pass would be (docs/breaking-box.md).
        return (pipe);
    }

    if (req.method != "GET" && req.method != "HEAD") {
        # Editorial and personal writes go straight to the app.
        return (pass);
    }

    # Never cached: the admin, personal endpoints, anything authenticated.
    if (req.url ~ "^/admin(/|$)" || req.url ~ "^/api/user(/|$)" || req.http.Authorization) {
        return (pass);
    }

    if (req.url ~ "^/(static|media)/") {
        # Files: static (whitenoise) and uploaded images (newsite/files.py). Their content-hashed
        # names are kept a year (immutable), the others their short max-age; identical for every
        # reader, so query strings and cookies play no part (a signed-in editor hits too).
        set req.url = regsub(req.url, "\?.*$", "");
        unset req.http.Cookie;
    } else {
        # Query strings, like the app's cache keys: only the route's own parameters (the
        # generated block below, from the views' @cache_public(params=...)), sorted.
        call tiered_cache_public_route;
        if (!req.http.X-Edge-Public) {
            # Not a public route (API docs and schema, ops, anything with a per-visitor token,
            # unknown paths): never served from or stored in the cache, cookies kept.
            return (pass);
        }
        set req.url = regsub(req.url, "[?&]+$", "");
        if (req.url ~ "[?&]([^=&]+)(=[^&]*)?&([^&]*&)*\1(=|&|$)") {
            # A parameter given twice: the app reads the last one, which sorting would change.
            return (pass);
        }
        set req.url = std.querysort(req.url);
        # Public routes are identical for every reader: cookies are ignored there.
        unset req.http.Cookie;
    }

    if (req.http.X-Edge-Fresh) {
        # Restarted from vcl_hit: the copy is past stale-while-revalidate; fetch a fresh one.
        set req.grace = 0s;
    } elsif (req.http.X-Edge-Stale) {
        # That fetch failed: any copy within the object's grace (stale-if-error) will do.
        set req.grace = 3650d;
    }
    return (hash);
}

sub vcl_hit {
    # Past stale-while-revalidate, only stale-if-error allows serving this copy: try a fresh
    # fetch first (vcl_synth comes back here with X-Edge-Stale set if that fetch fails).
    if (obj.ttl <= 0s && !req.http.X-Edge-Stale
        && obj.ttl + std.duration(obj.http.X-Edge-SWR, 0s) <= 0s) {
        set req.http.X-Edge-Fresh = "1";
        return (restart);
    }
    return (deliver);
}

sub vcl_backend_fetch {
    # Tell the app this fetch is the edge's: it starts at L2, never at an L1 copy that the
    # invalidation broadcast has not reached yet (a purge may land before it does). Its value,
    # when this attempt started (microseconds, as vcl_recv's purge record), is for
    # vcl_backend_error and vcl_backend_response
    # (the app only looks for the header).
    set bereq.http.X-Edge-Fetch = std.integer(real=(std.real(time=now) - 1700000000.0) * 1000000.0);
}

sub vcl_backend_response {
    if (bereq.uncacheable) {
        return (deliver);
    }
    if (beresp.status >= 500 || beresp.status == 429) {
        # A background refresh or a forced-fresh fetch that fails keeps the stale copy (a 429: the
        # client that triggered it was over its budget of uncached reads, newsite/throttle.py).
        if (bereq.is_bgfetch || bereq.http.X-Edge-Fresh) {
            return (abandon);
        }
        set beresp.ttl = 0s;
        set beresp.uncacheable = true;
        return (deliver);
    }

    if (beresp.ttl > 0s && beresp.http.Cache-Control !~ "(private|no-store|no-cache)"
        && std.integer(var.global_get("edge-purged-at"), 0) >= std.integer(bereq.http.X-Edge-Fetch, 0)) {
        # A purge reached this edge after this fetch began (or in its microsecond): the
        # response may be what it purged, built before its write and arriving after it. Fetch
        # it again: the app invalidated L2 and every L1 before sending the purge, so the new
        # attempt reads the new version (and a fill that overlapped no purge is stored as is).
        # Twice overtaken: this answer is served and not kept (the next request fetches).
        if (bereq.retries < 2) {
            return (retry);
        }
        call vcl_beresp_hitmiss;
    }

    if (beresp.status >= 300 && beresp.status < 400 && beresp.status != 304
        && beresp.http.Cache-Control !~ "max-age=") {
        # A redirect the app did not mark cacheable: Django's HTTPS redirect (SECURE_SSL_REDIRECT)
        # answers a request that came without X-Forwarded-Proto, which is not in the key; kept,
        # it would send every reader of the URL round in circles (issue 28.11).
        call vcl_beresp_hitmiss;
    }

    if (bereq.http.X-Edge-Public) {
        if (beresp.http.Cache-Control !~ "(private|no-store|no-cache)") {
            # Public and identical for everyone: a stray cookie must not make it uncacheable.
            unset beresp.http.Set-Cookie;
        }
    }

    # Index by the app's tags (space- or comma-separated).
    if (beresp.http.Surrogate-Key) {
        set beresp.http.xkey = beresp.http.Surrogate-Key;
    } elsif (beresp.http.Cache-Tag) {
        set beresp.http.xkey = beresp.http.Cache-Tag;
    }

    # Grace: stale-while-revalidate (default 10s) is served while refreshing in the background;
    # stale-if-error extends how long a stale copy may be served when fetches fail.
    set beresp.http.X-Edge-SWR = "10s";
    if (beresp.http.Cache-Control ~ "stale-while-revalidate=[0-9]+") {
        set beresp.http.X-Edge-SWR = regsub(beresp.http.Cache-Control,
            "^.*stale-while-revalidate=([0-9]+).*$", "\1s");
    }
    set beresp.grace = std.duration(beresp.http.X-Edge-SWR, 10s);
    if (beresp.http.Cache-Control ~ "stale-if-error=[0-9]+") {
        if (std.duration(regsub(beresp.http.Cache-Control, "^.*stale-if-error=([0-9]+).*$", "\1s"), 0s)
            > beresp.grace) {
            set beresp.grace = std.duration(
                regsub(beresp.http.Cache-Control, "^.*stale-if-error=([0-9]+).*$", "\1s"), 0s);
        }
    }
    if (bereq.http.X-Edge-Public == "api-breaking" && beresp.status == 200 && beresp.ttl <= 0s
        && beresp.http.Cache-Control ~ "s-maxage=[1-9]"
        && beresp.http.Cache-Control ~ "stale-while-revalidate=[1-9]"
        && beresp.http.Cache-Control !~ "(private|no-store|no-cache)") {
        # Already stale on arrival: the app answered from a copy whose Age reached s-maxage (its
        # own stale-while-revalidate, while it refreshes). The built-in would make the URL
        # hit-for-miss for 120 s, and every open page's poll of the breaking box would pass to
        # the app (measured: 76 req/s at 10,000 pages, bench/results/2026-12-07-breaking-box.md).
        # Kept 1 s instead (within the stale-while-revalidate it carries), without grace: the next
        # request after it fetches once and the others wait for that fetch (coalesced).
        set beresp.ttl = 1s;
        set beresp.grace = 0s;
        set beresp.keep = 0s;
    }

    # No return: the built-in logic runs next and makes private / no-store / no-cache /
    # Set-Cookie / Vary: * / s-maxage=0 responses uncacheable (hit-for-miss, below).
}

sub vcl_beresp_hitmiss {
    # The built-in keeps a hit-for-miss marker 120 s: one object per URL for answers nobody
    # may keep (errors, 400s, the first sight of a search or a 404, which the app serves with
    # s-maxage=0). Junk query strings would pile them up: 1 s is enough to keep concurrent
    # requests for one uncacheable URL off the waiting list.
    set beresp.ttl = 1s;
    set beresp.grace = 0s;
    set beresp.keep = 0s;
    set beresp.uncacheable = true;
    return (deliver);
}

sub vcl_backend_error {
    # A GET or HEAD whose fetch failed without a response within 0.5 s: a connection refused, or
    # one the app server closed unanswered, as a worker being replaced by a graceful reload
    # (granian's SIGHUP) does to the connections it had just accepted. Tried once more (Varnish
    # itself retries only a reused connection). Timeouts (connect 1 s, first byte 30 s) and
    # writes are not retried; a read that fails fast twice gets the error.
    if ((bereq.method == "GET" || bereq.method == "HEAD") && !bereq.http.X-Edge-Error-Retry
        && std.integer(real=(std.real(time=now) - 1700000000.0) * 1000000.0)
           - std.integer(bereq.http.X-Edge-Fetch, 0) < 500000) {
        set bereq.http.X-Edge-Error-Retry = "1";
        return (retry);
    }
    if (bereq.is_bgfetch || bereq.http.X-Edge-Fresh) {
        return (abandon);
    }
    # Otherwise the built-in error page.
}

sub vcl_synth {
    # A forced-fresh fetch failed: serve the stale copy if stale-if-error still covers it.
    if (req.http.X-Edge-Fresh && !req.http.X-Edge-Stale && resp.status == 503 && req.restarts < 3) {
        unset req.http.X-Edge-Fresh;
        set req.http.X-Edge-Stale = "1";
        return (restart);
    }
    set resp.http.X-Cache-Edge = "MISS";
    # The built-in synthetic page follows.
}

sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache-Edge = "HIT";
        # The stored X-Request-ID is the filling request's, not this one's.
        unset resp.http.X-Request-ID;
    } else {
        set resp.http.X-Cache-Edge = "MISS";
    }
    unset resp.http.xkey;
    unset resp.http.Surrogate-Key;
    unset resp.http.Cache-Tag;
    unset resp.http.X-Edge-SWR;
    unset resp.http.Via;
    unset resp.http.X-Varnish;
    return (deliver);
}

# BEGIN generated by `manage.py edge_vcl --write` from the @cache_public policies: do not edit.
sub tiered_cache_public_route {
    unset req.http.X-Edge-Public;
    if (req.url ~ "^/health/canary/(\?|$)") {
        set req.http.X-Edge-Public = "health-canary";
        set req.url = regsub(req.url, "\?.*$", "");
    } elsif (req.url ~ "^/api/articles/(\?|$)") {
        set req.http.X-Edge-Public = "api-articles";
        set req.url = regsuball(req.url, "(?<=[?&])(?!(?:page)(?:=|&|$))[^&]*(?:&|$)", "");
    } elsif (req.url ~ "^/api/articles/trending/(\?|$)") {
        set req.http.X-Edge-Public = "api-trending";
        set req.url = regsub(req.url, "\?.*$", "");
    } elsif (req.url ~ "^/api/articles/(?:[0-9]+)/(\?|$)") {
        set req.http.X-Edge-Public = "api-article";
        set req.url = regsub(req.url, "\?.*$", "");
    } elsif (req.url ~ "^/api/breaking\-news/(\?|$)") {
        set req.http.X-Edge-Public = "api-breaking";
        set req.url = regsub(req.url, "\?.*$", "");
    } elsif (req.url ~ "^/api/categories/(\?|$)") {
        set req.http.X-Edge-Public = "api-categories";
        set req.url = regsub(req.url, "\?.*$", "");
    } elsif (req.url ~ "^/api/categories/(?:[-a-zA-Z0-9_]+)/articles/(\?|$)") {
        set req.http.X-Edge-Public = "api-category-articles";
        set req.url = regsuball(req.url, "(?<=[?&])(?!(?:page)(?:=|&|$))[^&]*(?:&|$)", "");
    } elsif (req.url ~ "^/api/authors/(?:[0-9]+)/(\?|$)") {
        set req.http.X-Edge-Public = "api-author";
        set req.url = regsub(req.url, "\?.*$", "");
    } elsif (req.url ~ "^/api/authors/(?:[0-9]+)/articles/(\?|$)") {
        set req.http.X-Edge-Public = "api-author-articles";
        set req.url = regsuball(req.url, "(?<=[?&])(?!(?:page)(?:=|&|$))[^&]*(?:&|$)", "");
    } elsif (req.url ~ "^/api/search/(\?|$)") {
        set req.http.X-Edge-Public = "api-search";
        set req.url = regsuball(req.url, "(?<=[?&])(?!(?:page|q)(?:=|&|$))[^&]*(?:&|$)", "");
    } elsif (req.url ~ "^/(\?|$)") {
        set req.http.X-Edge-Public = "home";
        set req.url = regsuball(req.url, "(?<=[?&])(?!(?:page)(?:=|&|$))[^&]*(?:&|$)", "");
    } elsif (req.url ~ "^/articles/(?:[-a-zA-Z0-9_]+)/(\?|$)") {
        set req.http.X-Edge-Public = "article";
        set req.url = regsub(req.url, "\?.*$", "");
    } elsif (req.url ~ "^/category/(?:[-a-zA-Z0-9_]+)/(\?|$)") {
        set req.http.X-Edge-Public = "category";
        set req.url = regsuball(req.url, "(?<=[?&])(?!(?:page)(?:=|&|$))[^&]*(?:&|$)", "");
    } elsif (req.url ~ "^/feed/(\?|$)") {
        set req.http.X-Edge-Public = "feed-home";
        set req.url = regsub(req.url, "\?.*$", "");
    } elsif (req.url ~ "^/feed/atom/(\?|$)") {
        set req.http.X-Edge-Public = "feed-home-atom";
        set req.url = regsub(req.url, "\?.*$", "");
    } elsif (req.url ~ "^/category/(?:[-a-zA-Z0-9_]+)/feed/(\?|$)") {
        set req.http.X-Edge-Public = "feed-category";
        set req.url = regsub(req.url, "\?.*$", "");
    } elsif (req.url ~ "^/category/(?:[-a-zA-Z0-9_]+)/feed/atom/(\?|$)") {
        set req.http.X-Edge-Public = "feed-category-atom";
        set req.url = regsub(req.url, "\?.*$", "");
    } elsif (req.url ~ "^/sitemap\.xml(\?|$)") {
        set req.http.X-Edge-Public = "sitemap-index";
        set req.url = regsub(req.url, "\?.*$", "");
    } elsif (req.url ~ "^/sitemap\-pages\.xml(\?|$)") {
        set req.http.X-Edge-Public = "sitemap-pages";
        set req.url = regsuball(req.url, "(?<=[?&])(?!(?:p)(?:=|&|$))[^&]*(?:&|$)", "");
    } elsif (req.url ~ "^/sitemap\-articles\.xml(\?|$)") {
        set req.http.X-Edge-Public = "sitemap-articles";
        set req.url = regsuball(req.url, "(?<=[?&])(?!(?:p)(?:=|&|$))[^&]*(?:&|$)", "");
    } elsif (req.url ~ "^/sitemap\-news\.xml(\?|$)") {
        set req.http.X-Edge-Public = "sitemap-news";
        set req.url = regsuball(req.url, "(?<=[?&])(?!(?:p)(?:=|&|$))[^&]*(?:&|$)", "");
    } elsif (req.url ~ "^/robots\.txt(\?|$)") {
        set req.http.X-Edge-Public = "robots-txt";
        set req.url = regsub(req.url, "\?.*$", "");
    }
}
# END generated
