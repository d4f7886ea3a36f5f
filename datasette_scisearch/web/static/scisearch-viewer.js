// datasette-scisearch: the item page's image viewer.  Without JavaScript the page shows the preview as a
// plain image; with it the preview becomes a canvas with a scale bar (from the file's pixel size), zoom and
// pan, black and white levels, gamma and a log display (diffraction patterns need log), and a PNG download of
// what is shown.  The preview is 8-bit: the levels stretch what the preview kept, not the raw data.
(function () {
  "use strict";
  var figure = document.querySelector("[data-scisearch-viewer]");
  if (!figure) return;
  var img = figure.querySelector("img");
  var NICE = [1, 2, 5];

  function niceLength(maxNm) {
    // The largest 1, 2 or 5 × 10^k nm not longer than maxNm.
    var power = Math.pow(10, Math.floor(Math.log10(maxNm)));
    var best = power;
    NICE.forEach(function (step) { if (step * power <= maxNm) best = step * power; });
    return best;
  }

  function lengthLabel(nm) {
    if (nm >= 1000) return (nm / 1000) + " µm";
    if (nm < 1) return (nm * 1000) + " pm";
    return nm + " nm";
  }

  function start() {
    var width = img.naturalWidth, height = img.naturalHeight;
    if (!width || !height) return;
    var source = document.createElement("canvas");
    source.width = width;
    source.height = height;
    var sourceContext = source.getContext("2d");
    sourceContext.drawImage(img, 0, 0);
    var original;
    try {
      original = sourceContext.getImageData(0, 0, width, height);
    } catch (error) {
      return; // a preview from elsewhere cannot be read: keep the plain image
    }
    var canvas = figure.querySelector(".scisearch-viewer-canvas");
    canvas.width = width;
    canvas.height = height;
    canvas.setAttribute("aria-label", img.alt);
    var context = canvas.getContext("2d");
    var controls = figure.querySelector(".scisearch-viewer-controls");
    var black = controls.querySelector("[name=black]");
    var white = controls.querySelector("[name=white]");
    var gamma = controls.querySelector("[name=gamma]");
    var log = controls.querySelector("[name=log]");
    var gammaValue = controls.querySelector(".scisearch-gamma-value");
    if (figure.dataset.kind === "diffraction") log.checked = true;

    function render() {
      var low = Number(black.value), high = Math.max(Number(white.value), low + 1);
      var exponent = 1 / Number(gamma.value);
      var table = new Uint8ClampedArray(256);
      for (var v = 0; v < 256; v++) {
        var x = Math.min(1, Math.max(0, (v - low) / (high - low)));
        if (log.checked) x = Math.log1p(255 * x) / Math.log(256);
        table[v] = Math.round(255 * Math.pow(x, exponent));
      }
      var shown = context.createImageData(width, height);
      var from = original.data, to = shown.data;
      for (var i = 0; i < from.length; i += 4) {
        to[i] = table[from[i]];
        to[i + 1] = table[from[i + 1]];
        to[i + 2] = table[from[i + 2]];
        to[i + 3] = 255;
      }
      context.putImageData(shown, 0, 0);
      gammaValue.textContent = Number(gamma.value).toFixed(2);
    }

    // Zoom and pan: the canvas moves inside a fixed frame.
    var frame = figure.querySelector(".scisearch-viewer-frame");
    var scale = 1, offsetX = 0, offsetY = 0;
    var zoomLabel = controls.querySelector(".scisearch-zoom-value");

    function place() {
      canvas.style.transform = "translate(" + offsetX + "px, " + offsetY + "px) scale(" + scale + ")";
      zoomLabel.textContent = Math.round(scale * 100) + "%";
      drawScaleBar();
    }

    function zoom(factor, atX, atY) {
      var next = Math.min(32, Math.max(1, scale * factor));
      if (atX === undefined) { atX = frame.clientWidth / 2; atY = frame.clientHeight / 2; }
      offsetX = atX - (atX - offsetX) * (next / scale);
      offsetY = atY - (atY - offsetY) * (next / scale);
      scale = next;
      if (scale === 1) { offsetX = 0; offsetY = 0; }
      place();
    }

    frame.addEventListener("wheel", function (event) {
      event.preventDefault();
      var box = frame.getBoundingClientRect();
      zoom(event.deltaY < 0 ? 1.25 : 0.8, event.clientX - box.left, event.clientY - box.top);
    }, { passive: false });
    var dragging = null;
    frame.addEventListener("pointerdown", function (event) {
      dragging = { x: event.clientX - offsetX, y: event.clientY - offsetY };
      frame.setPointerCapture(event.pointerId);
    });
    frame.addEventListener("pointermove", function (event) {
      if (!dragging || scale === 1) return;
      offsetX = event.clientX - dragging.x;
      offsetY = event.clientY - dragging.y;
      place();
    });
    frame.addEventListener("pointerup", function () { dragging = null; });
    controls.querySelector("[data-zoom=in]").addEventListener("click", function () { zoom(1.5); });
    controls.querySelector("[data-zoom=out]").addEventListener("click", function () { zoom(1 / 1.5); });
    controls.querySelector("[data-zoom=reset]").addEventListener("click", function () {
      scale = 1; offsetX = 0; offsetY = 0; place();
    });

    // The scale bar: the file's pixel size times its width over the preview's, over what is on screen now.
    var bar = figure.querySelector(".scisearch-scale-bar");
    var pixelNm = Number(figure.dataset.pixelSizeNm), columns = Number(figure.dataset.columns) || width;
    function drawScaleBar() {
      if (!(pixelNm > 0) || !bar) return;
      var shownWidth = canvas.getBoundingClientRect().width || canvas.clientWidth;
      if (!shownWidth) return;
      var nmPerScreenPixel = (pixelNm * columns) / shownWidth;
      var length = niceLength(nmPerScreenPixel * frame.clientWidth * 0.25);
      bar.hidden = false;
      bar.querySelector(".scisearch-scale-line").style.width = (length / nmPerScreenPixel) + "px";
      bar.querySelector(".scisearch-scale-label").textContent = lengthLabel(length);
      bar.dataset.lengthNm = String(length);
    }

    controls.querySelector("[data-download]").addEventListener("click", function () {
      canvas.toBlob(function (blob) {
        var link = document.createElement("a");
        link.href = URL.createObjectURL(blob);
        link.download = (figure.dataset.name || "preview").replace(/\.[^.]+$/, "") + "-view.png";
        document.body.appendChild(link);
        link.click();
        link.remove();
        setTimeout(function () { URL.revokeObjectURL(link.href); }, 1000);
      }, "image/png");
    });

    [black, white, gamma, log].forEach(function (input) { input.addEventListener("input", render); });
    controls.querySelector("[data-levels=reset]").addEventListener("click", function () {
      black.value = 0; white.value = 255; gamma.value = 1; log.checked = figure.dataset.kind === "diffraction";
      render();
    });
    figure.classList.add("scisearch-viewer-ready");
    img.closest("a").hidden = true;
    frame.hidden = false;
    controls.hidden = false;
    render();
    place();
    window.addEventListener("resize", drawScaleBar);
  }

  if (img.complete) start();
  else img.addEventListener("load", start);
})();

// A stack's or 4D scan's frames kept at load: the slider (and ←/→ on it) steps through them in place; without
// JavaScript the slider stays hidden and each frame is a link.
(function () {
  "use strict";
  var figure = document.querySelector("[data-scisearch-frames]");
  if (!figure) return;
  var img = figure.querySelector(".scisearch-frame-image");
  var slider = figure.querySelector("input[name=frame]");
  var label = figure.querySelector(".scisearch-frame-label");
  var links = Array.prototype.slice.call(figure.querySelectorAll("[data-frame-url]"));
  if (!img || !slider || links.length < 2) return;
  var title = img.alt.replace(/^.*? of /, "");
  function show(index) {
    var link = links[index];
    img.src = link.dataset.frameUrl;
    img.alt = link.dataset.frameLabel + " of " + title;
    label.textContent = link.dataset.frameLabel;
    slider.setAttribute("aria-valuetext", link.dataset.frameLabel);
  }
  slider.hidden = false;
  figure.querySelector(".scisearch-frame-links").hidden = true;
  slider.addEventListener("input", function () { show(Number(slider.value)); });
})();
