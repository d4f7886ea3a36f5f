// datasette-scisearch: tell the catalog which search result was opened, so ranking can learn from it.
// Each result carries its search id, its position and where to report (web/clicks.py logged what was shown);
// one small POST per opened result, sent with navigator.sendBeacon so it survives leaving the page.  The form
// carries Datasette's CSRF token (sendBeacon cannot set headers) and nothing about the person.
(function () {
  "use strict";
  var script = document.currentScript;
  var csrftoken = (script && script.getAttribute("data-scisearch-csrftoken")) || "";
  function report(event) {
    if (event.type === "auxclick" && event.button !== 1) return; // the middle button opens a tab; others do not
    var link = event.target.closest && event.target.closest("a[href]");
    var result = link && link.closest("[data-scisearch-position]");
    if (!result || !navigator.sendBeacon) return;
    var form = new URLSearchParams();
    form.set("csrftoken", csrftoken);
    form.set("search_id", result.getAttribute("data-scisearch-search-id"));
    form.set("position", result.getAttribute("data-scisearch-position"));
    form.set("item_type", result.getAttribute("data-item-type") || "");
    form.set("item_id", result.getAttribute("data-item-id") || "");
    navigator.sendBeacon(result.getAttribute("data-scisearch-click-url"), form);
  }
  document.addEventListener("click", report, true);
  document.addEventListener("auxclick", report, true);
})();
