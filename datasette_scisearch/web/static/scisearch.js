// datasette-scisearch: keyboard comfort for the search and item pages; everything works without it.
(function () {
  "use strict";
  // "/" jumps to the query box from anywhere on the page, as on most search sites.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    var box = document.querySelector(".scisearch-q");
    if (!box) return;
    event.preventDefault();
    box.focus();
    box.select();
  });
  // Previous / next through the current results: the search page remembers its results (for this tab only,
  // in sessionStorage), and an item page opened from them offers the neighbours and the way back.
  var STORE = "scisearch-results";
  function remember() {
    var items = [];
    document.querySelectorAll(".scisearch-results [data-item-id]").forEach(function (result) {
      var link = result.querySelector("h3 a[href], th a[href]");
      if (link) items.push({ url: link.pathname, title: link.textContent.trim() });
    });
    var next = document.querySelector('.scisearch-pagination a[rel="next"]');
    var previous = document.querySelector('.scisearch-pagination a[rel="prev"]');
    try {
      sessionStorage.setItem(STORE, JSON.stringify({
        search: location.pathname + location.search,
        items: items,
        next: next ? next.href : null,
        previous: previous ? previous.href : null,
      }));
    } catch (error) { /* storage refused (private mode): no previous / next, nothing else lost */ }
  }
  function link(href, text, rel, title) {
    var a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    if (rel) a.rel = rel;
    if (title) a.title = title;
    return a;
  }
  function offerNeighbours(nav) {
    var saved;
    try { saved = JSON.parse(sessionStorage.getItem(STORE) || "null"); } catch (error) { return; }
    if (!saved || !saved.items) return;
    var here = -1;
    saved.items.forEach(function (item, index) { if (item.url === location.pathname) here = index; });
    if (here < 0) return;
    var before = saved.items[here - 1], after = saved.items[here + 1];
    if (before) nav.appendChild(link(before.url, "‹ Previous", "prev", before.title));
    else if (saved.previous) nav.appendChild(link(saved.previous, "‹ Previous page", "prev"));
    var position = document.createElement("span");
    position.textContent = (here + 1) + " of " + saved.items.length + " results";
    nav.appendChild(position);
    nav.appendChild(link(saved.search, "Back to results"));
    if (after) nav.appendChild(link(after.url, "Next ›", "next", after.title));
    else if (saved.next) nav.appendChild(link(saved.next, "Next page ›", "next"));
    nav.hidden = false;
    // ← and → step through the results, as in an image viewer.
    document.addEventListener("keydown", function (event) {
      var target = event.target;
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
      var rel = event.key === "ArrowLeft" ? "prev" : event.key === "ArrowRight" ? "next" : null;
      var go = rel && nav.querySelector('a[rel="' + rel + '"]');
      if (go) location.href = go.href;
    });
  }
  if (document.querySelector(".scisearch-results [data-item-id]")) remember();
  var nav = document.querySelector("[data-scisearch-result-nav]");
  if (nav) offerNeighbours(nav);
  // On a phone the filters are a drawer after the results: closed until asked for.
  var drawer = document.querySelector("[data-scisearch-drawer]");
  if (drawer && window.matchMedia("(max-width: 800px)").matches) {
    drawer.removeAttribute("open");
  }
})();
