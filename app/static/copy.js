// Copy buttons: <button data-copy="#input-id" data-copied="コピーしました" data-copy-failed="…" hidden>.
// The button stays hidden without JavaScript (the URL in its read-only field can still be selected);
// with it, a click copies the field's text and says so in the page's next role="status" element.
// An external file because the Content-Security-Policy allows no inline script.
(function () {
  var buttons = document.querySelectorAll("button[data-copy]");
  function say(button, text) {
    var status = button.closest("div").parentElement.querySelector("[role=status]");
    if (!status) return;
    status.textContent = text;
    clearTimeout(button._copyTimer);
    button._copyTimer = setTimeout(function () { status.textContent = ""; }, 4000);
  }
  function fallback(field) {
    // Pages served over plain http (not localhost) have no navigator.clipboard.
    field.focus();
    field.select();
    field.setSelectionRange(0, field.value.length);
    return document.execCommand && document.execCommand("copy");
  }
  Array.prototype.forEach.call(buttons, function (button) {
    var field = document.querySelector(button.dataset.copy);
    if (!field) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var done = function () { say(button, button.dataset.copied); };
      var failed = function () { say(button, fallback(field) ? button.dataset.copied : button.dataset.copyFailed); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(done, failed);
      } else {
        failed();
      }
    });
  });
  // A click in the read-only field selects the whole URL (easy to copy by hand on a phone).
  Array.prototype.forEach.call(document.querySelectorAll("input[readonly]"), function (field) {
    field.addEventListener("focus", function () { field.select(); });
  });
})();
