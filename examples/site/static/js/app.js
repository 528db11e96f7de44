// The small site's script: pushed with index.html when the client allows push.
// It reports how the page and its assets arrived (Resource Timing API).
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  var status = document.getElementById("status");
  if (!status || !window.performance || !performance.getEntriesByType) {
    return;
  }
  var page = performance.getEntriesByType("navigation")[0];
  var assets = performance.getEntriesByType("resource").filter(function (entry) {
    return entry.name.indexOf("/static/") !== -1;
  });
  var protocol = (page && page.nextHopProtocol) || "unknown";
  var text = "Page loaded over " + protocol + " with " + assets.length + " assets";
  var total = assets.reduce(function (sum, entry) { return sum + entry.duration; }, 0);
  if (assets.length) {
    text += " in " + total.toFixed(1) + " ms of fetching";
  }
  status.textContent = text + ".";
  if (protocol === "h2") {
    status.className += " pushed";
  }
});
