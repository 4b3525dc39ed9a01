(function () {
  "use strict";
  var SAFE = /^[A-Za-z0-9_\/.,:=+@%-]+$/;
  function quote(text) { return SAFE.test(text) ? text : "'" + text.replace(/'/g, "'\\''") + "'"; }
  function byRank(a, b) { return Number(a.getAttribute("data-rank")) - Number(b.getAttribute("data-rank")); }
  var SORTS = {
    rank: byRank,
    id: function (a, b) {
      var x = a.getAttribute("data-id"), y = b.getAttribute("data-id");
      return x < y ? -1 : (x > y ? 1 : byRank(a, b));
    },
    "given-prob": function (a, b) {
      var x = parseFloat(a.getAttribute("data-given-prob")), y = parseFloat(b.getAttribute("data-given-prob"));
      return ((isNaN(x) ? 2 : x) - (isNaN(y) ? 2 : y)) || byRank(a, b);
    }
  };
  var views = {};

  // a neighbour's preview sits once in its dataset's pool; a copy goes beside each shown card
  function addNeighbours(card) {
    var section = card.closest("section.dataset");
    var pool = section ? section.querySelector("div.neighbour-pool") : null;
    if (!pool) { return; }
    card.querySelectorAll(".neighbour[data-item]").forEach(function (slot) {
      if (slot.hasAttribute("data-filled")) { return; }
      slot.setAttribute("data-filled", "");
      var source = pool.querySelector('div[data-item="' + slot.getAttribute("data-item") + '"]');
      if (source && source.firstElementChild) {
        slot.insertBefore(source.firstElementChild.cloneNode(true), slot.firstChild);
      }
    });
  }

  function setup(form) {
    var id = form.getAttribute("data-gallery");
    var gallery = document.getElementById(id);
    var cards = Array.prototype.slice.call(gallery.querySelectorAll(".suspect"));
    var size = parseInt(form.getAttribute("data-page-size"), 10) || cards.length || 1;
    var pager = document.querySelector('nav.pager[data-gallery="' + id + '"]');
    var examples = document.querySelector('div.exemplars[data-gallery="' + id + '"]');
    var panel = document.querySelector('section.review-panel[data-gallery="' + id + '"]');
    var field = function (name) { return form.elements.namedItem(name); };
    var count = form.querySelector("output");
    var view = { page: 0, matching: cards };
    var selected = {};

    function matches(card) {
      var given = field("given").value, suggested = field("suggested").value;
      var search = field("search").value.trim().toLowerCase();
      var onlyNew = field("new") && field("new").checked;
      var text = field("text") ? field("text").value.trim().toLowerCase() : "";
      return (given === "" || card.getAttribute("data-given") === given) &&
        (suggested === "" || card.getAttribute("data-suggested") === suggested) &&
        (search === "" || card.getAttribute("data-id").toLowerCase().indexOf(search) !== -1) &&
        (!onlyNew || card.getAttribute("data-new") === "1") &&
        (text === "" || (card.getAttribute("data-text") || "").indexOf(text) !== -1);
    }
    function addExamples(card) {
      if (!examples || card.querySelector(".examples, .neighbours") || !card.querySelector("img.thumb")) { return; }
      var box = document.createElement("div");
      box.className = "examples";
      [["given", "data-given"], ["suggested", "data-suggested"]].forEach(function (pair) {
        var source = examples.querySelector('div[data-class="' + card.getAttribute(pair[1]) + '"]');
        if (!source || !source.children.length) { return; }
        var row = document.createElement("div");
        row.textContent = pair[0] + " " + source.getAttribute("data-name") + " looks like: ";
        Array.prototype.forEach.call(source.children, function (img) { row.appendChild(img.cloneNode(false)); });
        box.appendChild(row);
      });
      card.appendChild(box);
    }
    function render() {
      var sorted = cards.slice().sort(SORTS[field("sort").value] || byRank);
      var current = gallery.querySelectorAll(".suspect");
      // move cards only when the order changes: a move between a press and its release (the
      // search box's change event fires on that press) cancels the click, e.g. on "whole text"
      if (sorted.some(function (card, i) { return current[i] !== card; })) {
        sorted.forEach(function (card) { gallery.appendChild(card); });
      }
      var matching = sorted.filter(matches);
      var pages = Math.max(1, Math.ceil(matching.length / size));
      view.page = Math.min(Math.max(view.page, 0), pages - 1);
      var from = view.page * size, to = Math.min(from + size, matching.length);
      var shown = matching.slice(from, to);
      cards.forEach(function (card) { card.hidden = shown.indexOf(card) === -1; });
      shown.forEach(addNeighbours);
      shown.forEach(addExamples);
      view.matching = matching;
      count.textContent = "showing " + matching.length + " of " + cards.length;
      if (pager) {
        pager.hidden = pages < 2;
        pager.querySelector("output").textContent = "page " + (view.page + 1) + " of " + pages +
          " (" + (matching.length ? from + 1 : 0) + "-" + to + ")";
        pager.querySelector('[data-step="-1"]').disabled = view.page === 0;
        pager.querySelector('[data-step="1"]').disabled = view.page >= pages - 1;
      }
    }
    function filter(given, suggested) {
      [["given", given], ["suggested", suggested]].forEach(function (pair) {
        var select = field(pair[0]);
        if (!select.querySelector('option[value="' + pair[1] + '"]')) {
          var option = document.createElement("option");
          option.value = pair[1];
          option.textContent = "class " + pair[1];
          select.appendChild(option);
        }
        select.value = pair[1];
      });
      field("search").value = "";
      if (field("text")) { field("text").value = ""; }
      if (field("new")) { field("new").checked = false; }
      view.page = 0;
      render();
    }
    function reveal(card) {
      if (view.matching.indexOf(card) === -1) {
        form.reset();
        field("given").value = ""; field("suggested").value = ""; field("search").value = "";
        if (field("text")) { field("text").value = ""; }
        if (field("new")) { field("new").checked = false; }
      }
      render();
      view.page = Math.floor(view.matching.indexOf(card) / size);
      render();
    }
    function describe() {
      var by = panel.querySelector('input[name="by"]').value.trim();
      var spec = panel.getAttribute("data-spec"), dataset = panel.getAttribute("data-dataset");
      var results = panel.getAttribute("data-results");
      var groups = {}, order = [], yaml = [], today = new Date().toISOString().slice(0, 10);
      cards.forEach(function (card) {
        var decision = selected[card.id];
        if (!decision) { return; }
        var fixedHash = card.getAttribute("data-fixed-hash");
        var label = decision === "fixed" && fixedHash ? card.getAttribute("data-suggested-label") : "";
        var key = decision + "\u0000" + label;
        if (!groups[key]) { groups[key] = { decision: decision, label: label, ids: [] }; order.push(key); }
        groups[key].ids.push(card.getAttribute("data-id"));
        var lines = [
          "- dataset: " + JSON.stringify(dataset),
          "  id: " + JSON.stringify(card.getAttribute("data-id")),
          "  hash: " + JSON.stringify(label ? fixedHash : card.getAttribute("data-hash")),
          "  decision: " + JSON.stringify(decision),
          "  by: " + JSON.stringify(by || "your name"),
          "  date: " + JSON.stringify(today)
        ];
        if (label) { lines.push("  label: " + JSON.stringify(label)); }
        yaml.push(lines.join("\n"));
      });
      var commands = order.map(function (key) {
        var g = groups[key];
        var words = ["python", "-m", "pytest_labelquality.reviews", "add", quote(spec), quote(dataset)];
        g.ids.forEach(function (item) { words.push(quote(item)); });
        words.push("--decision", g.decision);
        if (g.label) { words.push("--label", quote(g.label)); }
        words.push("--by", by ? quote(by) : '"$(git config user.name)"');
        if (results) { words.push("--results", quote(results)); }
        return words.join(" ");
      });
      panel.querySelector(".selected-count").textContent = yaml.length + (yaml.length === 1 ? " item" : " items") + " selected";
      panel.querySelector(".review-command").textContent = commands.join("\n");
      panel.querySelector(".review-yaml").textContent = yaml.join("\n");
      var correct = order.filter(function (key) { return groups[key].decision === "correct"; });
      var accepted = correct.length ? groups[correct[0]].ids.map(quote) : [];
      panel.querySelector(".accept-comment").textContent = accepted.length ? "/label-quality accept " + accepted.join(" ") : "";
      panel.querySelector(".accept-comment").hidden = panel.querySelector(".accept-note").hidden = !accepted.length;
    }

    form.addEventListener("change", function () { view.page = 0; render(); });
    form.addEventListener("input", function () { view.page = 0; render(); });
    form.addEventListener("reset", function () { window.setTimeout(function () { view.page = 0; render(); }, 0); });
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    if (pager) {
      pager.addEventListener("click", function (event) {
        var step = event.target.getAttribute && event.target.getAttribute("data-step");
        if (step) { view.page += Number(step); render(); gallery.scrollIntoView(); }
      });
    }
    if (panel) {
      gallery.addEventListener("click", function (event) {
        var button = event.target.closest ? event.target.closest(".review-buttons button") : null;
        if (!button) { return; }
        var card = button.closest(".suspect"), decision = button.getAttribute("data-decision");
        selected[card.id] = selected[card.id] === decision ? "" : decision;
        card.querySelectorAll(".review-buttons button").forEach(function (b) {
          b.setAttribute("aria-pressed", String(selected[card.id] === b.getAttribute("data-decision")));
        });
        card.classList.toggle("selected", Boolean(selected[card.id]));
        describe();
      });
      panel.querySelector('input[name="by"]').addEventListener("input", describe);
      gallery.querySelectorAll(".review-buttons").forEach(function (group) { group.hidden = false; });
      panel.hidden = false;
      describe();
    }
    form.hidden = false;
    render();
    views[id] = { filter: filter, reveal: reveal };
  }

  function setupIssues(section) {
    var form = section.querySelector("form.issue-filters");
    var panel = section.querySelector(".issue-review-panel");
    var figures = Array.prototype.slice.call(section.querySelectorAll("figure.pair, figure.outlier"));
    var selected = {}, order = [];
    function has(figure, name, value) {
      return !value || JSON.parse(figure.getAttribute(name)).indexOf(value) !== -1;
    }
    function render() {
      var split = form.elements.namedItem("split"), only = form.elements.namedItem("new");
      var shown = 0;
      figures.forEach(function (figure) {
        var keep = has(figure, "data-classes", form.elements.namedItem("class").value)
          && has(figure, "data-splits", split ? split.value : "")
          && (!only || !only.checked || figure.getAttribute("data-new") === "1");
        figure.hidden = !keep;
        if (keep) { shown += 1; }
      });
      form.querySelector("output").textContent = "showing " + shown + " of " + figures.length;
    }
    function describe() {
      var by = panel.querySelector('input[name="by"]').value.trim();
      var groups = {}, decisions = [];
      order.forEach(function (item) {
        var decision = selected[item];
        if (!decision) { return; }
        if (!groups[decision]) { groups[decision] = []; decisions.push(decision); }
        groups[decision].push(item);
      });
      var results = panel.getAttribute("data-results");
      var commands = decisions.map(function (decision) {
        var words = ["python", "-m", "pytest_labelquality.reviews", "add",
          quote(panel.getAttribute("data-spec")), quote(panel.getAttribute("data-dataset"))];
        groups[decision].forEach(function (item) { words.push(quote(item)); });
        words.push("--decision", decision, "--by", by ? quote(by) : '"$(git config user.name)"');
        if (results) { words.push("--results", quote(results)); }
        return words.join(" ");
      });
      var count = order.filter(function (item) { return selected[item]; }).length;
      panel.querySelector(".selected-count").textContent = count + (count === 1 ? " item" : " items") + " selected";
      panel.querySelector(".review-command").textContent = commands.join("\n");
    }
    section.addEventListener("click", function (event) {
      var button = event.target.closest ? event.target.closest(".review-buttons button[data-for]") : null;
      if (!button) { return; }
      var item = button.getAttribute("data-for"), decision = button.getAttribute("data-decision");
      if (order.indexOf(item) === -1) { order.push(item); }
      selected[item] = selected[item] === decision ? "" : decision;
      section.querySelectorAll(".review-buttons button[data-for]").forEach(function (b) {
        if (b.getAttribute("data-for") === item) {
          b.setAttribute("aria-pressed", String(selected[item] === b.getAttribute("data-decision")));
        }
      });
      describe();
    });
    form.addEventListener("change", render);
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    panel.querySelector('input[name="by"]').addEventListener("input", describe);
    section.querySelectorAll(".review-buttons").forEach(function (group) { group.hidden = false; });
    form.hidden = false;
    panel.hidden = false;
    render();
    describe();
  }

  document.querySelectorAll("form.filters").forEach(setup);
  document.querySelectorAll("section.data-issues").forEach(setupIssues);
  document.querySelectorAll(".below-gallery .suspect").forEach(addNeighbours);
  document.querySelectorAll(".matrix td[data-gallery]").forEach(function (cell) {
    function pick(event) {
      if (event.type === "keydown" && event.key !== "Enter" && event.key !== " ") { return; }
      event.preventDefault();
      var gallery = cell.getAttribute("data-gallery");
      if (!views[gallery]) { return; }
      views[gallery].filter(cell.getAttribute("data-given"), cell.getAttribute("data-suggested"));
      document.getElementById(gallery).scrollIntoView();
    }
    cell.addEventListener("click", pick);
    cell.addEventListener("keydown", pick);
  });
  function follow() {
    var target = location.hash ? document.getElementById(decodeURIComponent(location.hash.slice(1))) : null;
    var gallery = target && target.classList.contains("suspect") ? target.parentNode.id : "";
    if (views[gallery]) {
      views[gallery].reveal(target);
      target.scrollIntoView();
    }
  }
  window.addEventListener("hashchange", follow);
  follow();
})();
