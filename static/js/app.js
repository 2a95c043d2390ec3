// Small progressive enhancements; every page works without this file.

// A network failure or a server error would otherwise leave the page silently unchanged:
// say so at the top of the content, where a screen reader announces it.
(function () {
  function showProblem(text) {
    var main = document.getElementById("main");
    if (!main) return;
    var box = document.getElementById("htmx-problem");
    if (!box) {
      box = document.createElement("div");
      box.id = "htmx-problem";
      box.className = "notice notice-error";
      box.setAttribute("role", "alert");
      main.insertBefore(box, main.firstChild);
    }
    box.textContent = text;
  }
  var lang = document.documentElement.lang;
  document.addEventListener("htmx:sendError", function () {
    showProblem(lang === "en"
      ? "The server cannot be reached: check your connection and try again."
      : "Il server non risponde: controlla la connessione e riprova.");
  });
  document.addEventListener("htmx:responseError", function (event) {
    if (event.detail.xhr && event.detail.xhr.status >= 500) {
      showProblem(lang === "en"
        ? "Something went wrong on our side. Please try again in a moment."
        : "Si è verificato un errore imprevisto. Riprova tra poco.");
    }
  });
  document.addEventListener("htmx:beforeRequest", function () {
    var box = document.getElementById("htmx-problem");
    if (box) box.remove();
  });
})();

// What an htmx action did is swapped into the status region (base.html) out of band: keep it in
// view while the person works further down a long list, and drop it when they start the next action.
(function () {
  function region() { return document.getElementById("status-region"); }
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var box = region();
    if (box && event.detail.target === box) box.classList.add("pinned");
  });
  function clear() {
    var box = region();
    if (box) {
      box.textContent = "";
      box.classList.remove("pinned");
    }
  }
  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("#status-region .notice-dismiss")) clear();
  });
  document.addEventListener("htmx:beforeRequest", function (event) {
    // Only a person's own click, submit or typing: not the list refresh an action itself triggers.
    var cause = event.detail.requestConfig && event.detail.requestConfig.triggeringEvent;
    if (cause && cause.isTrusted) clear();
  });
})();

// Phone-width tables are read as one card per row, each cell labelled by its column (data-label,
// see app.css). Tables written without the labels get them from their header here.
(function () {
  function label() {
    var tables = document.querySelectorAll("table.data");
    Array.prototype.forEach.call(tables, function (table) {
      var heads = table.tHead && table.tHead.rows[0] ? table.tHead.rows[0].cells : [];
      Array.prototype.forEach.call(table.tBodies, function (body) {
        Array.prototype.forEach.call(body.rows, function (row) {
          var column = 0;
          Array.prototype.forEach.call(row.cells, function (cell) {
            var head = heads[column];
            column += cell.colSpan || 1;
            if (!head || cell.tagName !== "TD" || cell.hasAttribute("data-label")) return;
            if (/\b(primary-cell|actions|full)\b/.test(cell.className)) return;
            var text = head.textContent.trim();
            if (text) cell.setAttribute("data-label", text);
          });
        });
      });
    });
  }
  document.addEventListener("DOMContentLoaded", label);
  document.addEventListener("htmx:load", label);
})();

// The navigation is a <details> that CSS keeps open on a wide screen (::details-content). A browser
// without that gets the list opened here instead, rather than a closed "Menu" beside the content.
(function () {
  var wide = window.matchMedia("(min-width: 901px)");
  if (!wide.matches || (window.CSS && CSS.supports("selector(::details-content)"))) return;
  document.addEventListener("DOMContentLoaded", function () {
    var menu = document.querySelector("#sidenav > details");
    if (menu) menu.open = true;
  });
})();

// A "Copy" button (data-copy="#id") copies that element's text, and says so on the button.
(function () {
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      var label = button.textContent;
      button.textContent = button.getAttribute("data-copied") || "\u2713";
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  });
})();
