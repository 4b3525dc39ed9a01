(function () {
  "use strict";
  document.querySelectorAll("form.filters").forEach(function (form) {
    var gallery = document.getElementById(form.getAttribute("data-gallery"));
    var items = gallery.querySelectorAll(".suspect");
    var given = form.elements.namedItem("given");
    var suggested = form.elements.namedItem("suggested");
    var count = form.querySelector("output");
    var text = form.elements.namedItem("text");
    function apply() {
      var visible = 0;
      items.forEach(function (item) {
        var show = (given.value === "" || item.getAttribute("data-given") === given.value) &&
          (suggested.value === "" || item.getAttribute("data-suggested") === suggested.value) &&
          (!text || text.value === "" ||
            (item.getAttribute("data-text") || "").indexOf(text.value.toLowerCase()) >= 0);
        item.hidden = !show;
        if (show) { visible += 1; }
      });
      count.textContent = "showing " + visible + " of " + items.length;
    }
    form.addEventListener("change", apply);
    form.addEventListener("input", apply);
    form.addEventListener("reset", function () { window.setTimeout(apply, 0); });
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    form.hidden = false;
    apply();
  });
})();
