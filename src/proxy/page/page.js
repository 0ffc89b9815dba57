// Refresh the figures once a second from /page.json. Only textContent,
// className and polyline points are set: no markup from the server.
(function () {
  var version = document.body.getAttribute("data-version");
  function apply(d) {
    if (String(d.version) !== version) { location.reload(); return; }
    var w = document.getElementById("window");
    if (w) w.textContent = d.window;
    Object.keys(d.text).forEach(function (id) {
      var e = document.getElementById(id);
      if (!e) return;
      e.textContent = d.text[id];
      e.className = d["class"][id] || "";
    });
    Object.keys(d.points).forEach(function (id) {
      var e = document.getElementById(id);
      if (e) e.setAttribute("points", d.points[id]);
    });
    document.body.setAttribute("data-live", "1");
  }
  function poll() {
    fetch("/page.json", { cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(apply)
      .catch(function () {})
      .then(function () { setTimeout(poll, 1000); });
  }
  poll();
})();
