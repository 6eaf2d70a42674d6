// The console's few behaviours: the overview's live refresh (server-sent events, paused
// while the tab is hidden), the light/dark switch and the keyboard shortcuts.
(function () {
  "use strict";
  var root = document.documentElement;
  var stored = localStorage.getItem("junction-theme");
  if (stored) root.dataset.theme = stored;

  function currentTheme() {
    if (root.dataset.theme) return root.dataset.theme;
    return window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  function toggleTheme() {
    var next = currentTheme() === "dark" ? "light" : "dark";
    root.dataset.theme = next;
    localStorage.setItem("junction-theme", next);
  }

  function liveOverview() {
    var target = document.getElementById("overview");
    if (!target || !window.EventSource) return;
    var state = document.getElementById("live-state");
    var source = null;
    function open() {
      if (source) return;
      source = new EventSource(target.dataset.stream);
      source.addEventListener("overview", function (event) {
        target.innerHTML = event.data;
        target.dataset.updated = String(Date.now());
      });
      if (state) state.textContent = "Live: updates every few seconds while this tab is visible.";
    }
    function close() {
      if (!source) return;
      source.close();
      source = null;
      if (state) state.textContent = "Paused while the tab is hidden.";
    }
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) close(); else open();
    });
    if (!document.hidden) open();
  }

  var pages = { o: "/console", j: "/console/jobs", q: "/console/queues", s: "/console/schedules",
                i: "/console/integrations", c: "/console/channels", a: "/console/audit" };
  var pendingG = false;

  function typing(event) {
    var tag = event.target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || event.target.isContentEditable;
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event)) return;
    var help = document.getElementById("shortcuts");
    if (pendingG) {
      pendingG = false;
      if (pages[event.key]) { window.location.href = pages[event.key]; }
      return;
    }
    if (event.key === "g") { pendingG = true; setTimeout(function () { pendingG = false; }, 1500); }
    else if (event.key === "?") { if (help && !help.open) help.showModal(); }
    else if (event.key === "t") { toggleTheme(); }
    else if (event.key === "/") {
      var search = document.getElementById("f-payload");
      if (search) { event.preventDefault(); search.focus(); }
      else { window.location.href = "/console/jobs"; }
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme-toggle");
    if (button) button.addEventListener("click", toggleTheme);
    document.addEventListener("keydown", onKey);
    liveOverview();
  });
})();
