// Every page: on a narrow screen the navigation folds behind a Menu button. Without JavaScript it
// simply stays open, stacked under the brand.
(function () {
  "use strict";
  var header = document.querySelector("header.site");
  var toggle = header && header.querySelector(".menu-toggle");
  if (!toggle) {
    return;
  }
  header.classList.add("js-menu");
  toggle.addEventListener("click", function () {
    var open = header.classList.toggle("menu-open");
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
  });
})();
