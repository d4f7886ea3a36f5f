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
  // On a phone the filters are a drawer after the results: closed until asked for.
  var drawer = document.querySelector("[data-scisearch-drawer]");
  if (drawer && window.matchMedia("(max-width: 800px)").matches) {
    drawer.removeAttribute("open");
  }
})();
