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
