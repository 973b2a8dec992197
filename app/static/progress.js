// Updates the bulk message progress bar without reloading; reloads once when sending is done
// so the per-recipient table shows final states.
(function () {
  var box = document.getElementById("progress");
  if (!box) return;
  var url = box.dataset.url, wasDone = null;
  function set(id, value) { var el = document.getElementById(id); if (el) el.textContent = value; }
  function poll() {
    fetch(url, {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (p) {
      document.getElementById("progress-bar").value = p.percent;
      set("progress-percent", p.percent); set("progress-sent", p.sent);
      set("progress-failed", p.failed); set("progress-total", p.total);
      var done = p.status === "sending" && p.total > 0 && p.done >= p.total;
      if (wasDone === false && done) { window.location.reload(); return; }
      wasDone = done;
      if (!done && p.status !== "cancelled") setTimeout(poll, 1000);
    }).catch(function () { setTimeout(poll, 3000); });
  }
  poll();
})();
