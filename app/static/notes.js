// Live preview of the confirmation email while the host types (debounced; nothing is saved).
(function () {
  var form = document.getElementById("notes-form");
  if (!form) return;
  var area = form.querySelector("textarea"), timer = null;
  function refresh() {
    var data = new FormData(form);
    fetch(form.dataset.previewUrl, {method: "POST", body: data, credentials: "same-origin",
                                    headers: {"X-CSRFToken": data.get("csrf_token")}})
      .then(function (r) { return r.json(); })
      .then(function (p) {
        if (p.errors) return;
        document.getElementById("preview-subject").textContent = p.subject;
        document.getElementById("preview-html").srcdoc = p.html;
        document.getElementById("preview-text").textContent = p.text;
        document.getElementById("url-hint").hidden = !p.hint;
      });
  }
  area.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(refresh, 400); });
})();
