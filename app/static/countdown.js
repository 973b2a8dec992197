// The lesson page's countdown (booking/lesson.html): keeps 「開始まであと…」 current and reloads the
// page when 「参加する」 opens and when the lesson starts. The server renders the same text; without
// this script the page reads right and a reload shows the button's new state.
(function () {
  "use strict";
  var el = document.getElementById("countdown");
  if (!el) { return; }
  var startsAt = Date.parse(el.getAttribute("data-starts-at"));
  var opensAt = Date.parse(el.getAttribute("data-opens-at"));
  var opened = Date.now() >= opensAt;
  function fill(template, d, h, m) {
    return template.replace("{d}", d).replace("{h}", h).replace("{m}", m);
  }
  function tick() {
    var now = Date.now();
    if ((!opened && now >= opensAt) || now >= startsAt) {
      window.location.reload();
      return;
    }
    var total = Math.max(0, Math.ceil((startsAt - now) / 60000));
    var days = Math.floor(total / 1440), hours = Math.floor((total % 1440) / 60), minutes = total % 60;
    var text;
    if (days) { text = fill(el.getAttribute("data-fmt-days"), days, hours, minutes); }
    else if (hours) { text = fill(el.getAttribute("data-fmt-hours"), days, hours, minutes); }
    else { text = fill(el.getAttribute("data-fmt-minutes"), days, hours, minutes); }
    el.textContent = text;
  }
  setInterval(tick, 15000);
})();
