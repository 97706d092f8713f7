// The connect page: shows the session's QR code as it rotates and the
// channel's status, live over server-sent events; without them, it polls
// the status once a second, 30 times, then says what to do.
(function () {
  "use strict";
  var token = location.pathname.split("/")[2] || "";
  var base = "/connect/" + encodeURIComponent(token);
  var qr = document.getElementById("qr");
  var wait = document.getElementById("wait");
  var statusEl = document.getElementById("status");

  function phone(id) {
    var n = (id || "").split("@")[0];
    return /^[0-9]+$/.test(n) ? "+" + n : n;
  }

  function showQr(src) {
    qr.src = src;
    qr.hidden = false;
    wait.textContent = "The code changes every few seconds; this page follows it.";
  }

  // Returns true once there is nothing more to wait for.
  function show(s) {
    if (s.status === "connected") {
      document.body.dataset.state = "connected";
      statusEl.textContent = "Connected: " + [s.account_name, phone(s.account_id)].filter(Boolean).join(" · ");
      return true;
    }
    if (s.status === "connecting") {
      statusEl.textContent = "Waiting for the scan.";
      return false;
    }
    document.body.dataset.state = "failed";
    statusEl.textContent = s.status === "error"
      ? "The connection failed. Start again from your dashboard."
      : "This channel is " + s.status + ". Start again from your dashboard.";
    return true;
  }

  function poll(left) {
    if (left === 0) {
      document.body.dataset.state = "failed";
      statusEl.textContent = "We could not reach Switchboard. Check your connection, then reload this page.";
      return;
    }
    fetch(base + "/status", { cache: "no-store" })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (s) {
        if (show(s)) { return; }
        showQr(base + "/qr?t=" + Date.now());
        setTimeout(function () { poll(left - 1); }, 1000);
      })
      .catch(function () { setTimeout(function () { poll(left - 1); }, 1000); });
  }

  if (!("EventSource" in window)) { poll(30); return; }
  var heard = false;
  var events = new EventSource(base + "/events");
  events.addEventListener("status", function (e) {
    heard = true;
    if (show(JSON.parse(e.data))) { events.close(); }
  });
  events.addEventListener("qr", function (e) {
    heard = true;
    showQr(e.data);
  });
  events.onerror = function () {
    // Never heard from: no server-sent events here (a proxy, an old
    // browser); poll instead. Later errors reconnect by themselves.
    if (!heard) { events.close(); poll(30); }
  };
})();
