"use strict";
/* Sorts the flow table by the clicked column: numbers by value (data-v), text as text. */
(function () {
  var table = document.getElementById("flows");
  if (!table) { return; }
  var heads = table.querySelectorAll("thead th");
  function key(row, index) {
    var cell = row.cells[index];
    var value = cell.getAttribute("data-v");
    return value === null ? cell.textContent : value;
  }
  function sort(index, numeric, descending) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, index), y = key(b, index), order;
      if (numeric) { order = (parseFloat(x) || 0) - (parseFloat(y) || 0); }
      else { order = x < y ? -1 : x > y ? 1 : 0; }
      if (order === 0) { order = parseFloat(a.cells[0].textContent) - parseFloat(b.cells[0].textContent); }
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  Array.prototype.forEach.call(heads, function (th, index) {
    var button = th.querySelector("button");
    if (!button) { return; }
    button.addEventListener("click", function () {
      var descending = th.getAttribute("aria-sort") === "ascending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      sort(index, th.classList.contains("n"), descending);
    });
  });
}());
