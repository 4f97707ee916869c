// handoffd chat widget loader. Paste one tag into a page:
//   <script src="https://chat.example.com/widget.js" data-color="#0b5fff" async></script>
// It reads its options from its own data- attributes and loads the widget's ES modules from
// the same daemon (served with CORS for the daemon's widget.allowed_origins).
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__handoffdWidget) return;
  window.__handoffdWidget = true;
  var d = script.dataset;
  var server = (d.server || new URL(script.src, location.href).origin).replace(/\/+$/, "");
  var options = {
    server: server,
    color: d.color || "",
    greeting: d.greeting !== undefined ? d.greeting : null, // null: the default, in the widget's language
    position: d.position === "left" ? "left" : "right",
    language: d.language || navigator.language || "",
    title: d.title || "Chat with us",
    name: d.name || "",
    open: d.open === "true",
  };
  import(server + "/web/widget/app.js")
    .then(function (m) { m.mount(options); })
    .catch(function (e) { console.error("handoffd widget could not load", e); });
})();
