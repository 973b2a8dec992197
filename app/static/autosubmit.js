// Submits the form of a <select data-autosubmit> as soon as the choice changes. An external
// script instead of onchange="…", because the Content-Security-Policy allows no inline
// JavaScript. It is loaded before the form and listens on the document, so a change made
// while the rest of the page is still loading is not missed.
document.addEventListener("change", function (event) {
  var target = event.target;
  if (target instanceof HTMLSelectElement && target.hasAttribute("data-autosubmit")) {
    target.form.submit();
  }
});
