// The composer's placeholder buttons (お名前, サービス名 …): insert {guest_name} … at the cursor of
// the subject or body, whichever was used last (the body at first). The buttons are hidden until
// this script shows them: without JavaScript the list under them says what to type.
(function () {
  var box = document.querySelector("[data-placeholder-buttons]");
  if (!box) return;
  var fields = document.querySelectorAll("[data-placeholder-target]");
  var target = document.querySelector("textarea[data-placeholder-target]") || fields[0];
  if (!target) return;
  for (var i = 0; i < fields.length; i++) {
    fields[i].addEventListener("focus", function (event) { target = event.target; });
  }
  box.hidden = false;
  box.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-insert]");
    if (!button) return;
    var text = button.dataset.insert;
    var start = target.selectionStart, end = target.selectionEnd;
    if (start === null || start === undefined) { start = end = target.value.length; }
    target.setRangeText(text, start, end, "end");
    target.focus();
    // Let anything listening (and the browser's own undo of typing) know the value changed.
    target.dispatchEvent(new Event("input", {bubbles: true}));
  });
})();
