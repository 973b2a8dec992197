// A bulk message's page, live: while it is being sent, the progress bar, its stage (送信中 →
// 送信完了 / 一部失敗), the per-recipient rows and the 「失敗した…件だけ再送する」 button follow
// progress.json; a message waiting for its time is checked now and then and the page reloads once
// when it starts (or is held), since its actions change.
(function () {
  var live = document.getElementById("message-live");
  if (!live) return;
  var url = live.dataset.url, status = live.dataset.status;
  var FINAL = {sent: true, partly_failed: true, failed: true, cancelled: true, held: true};
  if (FINAL[live.dataset.stage]) return;
  function set(id, value) { var el = document.getElementById(id); if (el) el.textContent = value; }
  function html(id, value) { var el = document.getElementById(id); if (el && value !== undefined) el.innerHTML = value; }
  function show(p) {
    var bar = document.getElementById("progress-bar");
    if (bar) bar.value = p.percent;
    set("progress-percent", p.percent); set("progress-sent", p.sent);
    set("progress-failed", p.failed); set("progress-total", p.total);
    html("message-stage", p.stage_html);
    var rows = document.querySelector("#recipients tbody");
    if (rows && p.rows_html !== undefined) rows.innerHTML = p.rows_html;
    var resend = document.getElementById("resend-failed");
    if (resend) resend.hidden = !p.failed;
    if (p.resend_label) set("resend-label", p.resend_label);
  }
  function poll() {
    fetch(url, {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (p) {
      if (p.status !== status) { window.location.reload(); return; }
      if (p.status === "sending") show(p);
      if (FINAL[p.stage]) return;
      setTimeout(poll, p.status === "sending" ? 1000 : 5000);
    }).catch(function () { setTimeout(poll, 5000); });
  }
  poll();
})();
