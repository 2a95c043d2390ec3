// Small progressive enhancements; every page works without this file.
document.addEventListener("htmx:confirm", function () {});
