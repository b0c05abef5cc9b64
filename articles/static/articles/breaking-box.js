/* The breaking box updates itself (docs/breaking-box.md). Progressive enhancement: the page as
   served is complete; this script only keeps #breaking-box current while the page stays open.

   It polls the box's JSON (data-breaking-src, /api/breaking-news/) every data-breaking-every
   seconds with If-None-Match: the edge answers 304 from its copy, which a publish of a breaking
   story purges, so the origin sees about one request per edge per s-maxage whatever the number
   of readers. A hidden tab does not poll; it catches up when shown. The first poll comes at a
   random point of the interval, so pages opened together do not poll together. The box is drawn
   as articles/_breaking.html draws it (same elements, text set as text, never as HTML). */
(function () {
  "use strict";
  var box = document.getElementById("breaking-box");
  if (!box || !window.fetch) { return; }
  var src = box.getAttribute("data-breaking-src");
  var every = Math.max(5, Number(box.getAttribute("data-breaking-every")) || 15) * 1000;
  var etag = null, timer = null, busy = false;
  // The article page is served without the box (its cached bytes do not depend on breaking
  // news): fill it at once. The home page's box (data-breaking-served) is as fresh as the page.
  var served = box.hasAttribute("data-breaking-served");

  function draw(items) {
    var old = box.querySelector("section.breaking");
    if (!items.length) { if (old) { old.remove(); } return; }
    var section = document.createElement("section");
    section.className = "breaking";
    section.setAttribute("aria-label", "Breaking news");
    var label = document.createElement("strong");
    label.textContent = "Breaking:";
    section.append("\n    ", label, "\n    ");
    items.forEach(function (item, i) {
      var a = document.createElement("a");
      a.href = item.url;
      a.textContent = item.title;
      section.append(a);
      if (i < items.length - 1) { section.append(" \u00b7 "); }
    });
    section.append("\n  ");
    if (old) { old.replaceWith(section); } else { box.append(section); }
  }

  function poll() {
    timer = null;
    if (busy || document.hidden) { return; }
    busy = true;
    var headers = etag ? { "If-None-Match": etag } : {};
    fetch(src, { headers: headers, cache: "no-store", credentials: "omit" })
      .then(function (response) {
        if (response.status === 200) {
          etag = response.headers.get("ETag");
          return response.json().then(function (data) { draw(data.results || []); });
        }
        // 304: unchanged. Anything else (429, 5xx, offline): keep the box, try next time.
      })
      .catch(function () {})
      .then(function () { busy = false; schedule(every); });
  }

  function schedule(delay) {
    if (timer === null && !document.hidden) { timer = setTimeout(poll, delay); }
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { clearTimeout(timer); timer = null; } else { schedule(0); }
  });
  schedule(served ? Math.random() * every : 0);
})();
