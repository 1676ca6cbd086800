(function () {
  var search = document.getElementById("search");
  var rows = document.querySelectorAll("#cases tbody tr");
  var selects = ["prompt", "provider", "status"].map(function (name) {
    return document.getElementById("f-" + name);
  });
  function matches(row) {
    var text = search.value.toLowerCase(), status = selects[2].value;
    var searched = row.querySelector(".case").textContent + "\n" +
      row.querySelector(".out").textContent;
    return (!selects[0].value || row.dataset.prompt === selects[0].value) &&
      (!selects[1].value || row.dataset.provider === selects[1].value) &&
      (!status || row.dataset.status === status ||
        (status === "flipped" && row.dataset.flip === "1")) &&
      (!text || searched.toLowerCase().indexOf(text) >= 0);
  }
  function apply() {
    var shown = 0;
    rows.forEach(function (row) { row.hidden = !matches(row); shown += row.hidden ? 0 : 1; });
    document.getElementById("shown").textContent = shown + " of " + rows.length + " shown";
  }
  [search].concat(selects).forEach(function (el) { el.addEventListener("input", apply); });
  document.getElementById("filters").hidden = false;
  apply();
  document.body.dataset.ready = "1";
})();
