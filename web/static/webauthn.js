// Passkeys: the buttons with data-passkey run a WebAuthn ceremony with the
// server's options and post the result back. No other script runs on
// these pages.
(function () {
  "use strict";
  function b64u(buf) {
    var s = "", bytes = new Uint8Array(buf);
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function unb64u(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function post(url, csrf, body) {
    return fetch(url, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: body === undefined ? "{}" : JSON.stringify(body) })
      .then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error(j.error || "Refused"); return j; }); });
  }
  function encode(cred) {
    var r = cred.response, out = { id: cred.id, rawId: b64u(cred.rawId), type: cred.type, response: {
      clientDataJSON: b64u(r.clientDataJSON) } };
    if (r.attestationObject) {
      out.response.attestationObject = b64u(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = b64u(r.authenticatorData);
      out.response.signature = b64u(r.signature);
      if (r.userHandle) out.response.userHandle = b64u(r.userHandle);
    }
    return out;
  }
  function run(btn) {
    var csrf = btn.getAttribute("data-csrf"), status = document.getElementById(btn.getAttribute("data-status"));
    var say = function (m) { if (status) status.textContent = m; };
    if (!window.PublicKeyCredential) { say("This browser has no passkeys."); return; }
    var register = btn.getAttribute("data-passkey") === "register";
    var extra = "";
    var tenantField = btn.getAttribute("data-tenant-field");
    if (tenantField) extra = "?tenant=" + encodeURIComponent(document.getElementById(tenantField).value);
    var ret = btn.getAttribute("data-return");
    if (ret) extra += (extra ? "&" : "?") + "return=" + encodeURIComponent(ret);
    post(btn.getAttribute("data-options") + extra, csrf).then(function (o) {
      var pk = o.publicKey;
      pk.challenge = unb64u(pk.challenge);
      if (register) {
        pk.user.id = unb64u(pk.user.id);
        (pk.excludeCredentials || []).forEach(function (c) { c.id = unb64u(c.id); });
        return navigator.credentials.create({ publicKey: pk });
      }
      (pk.allowCredentials || []).forEach(function (c) { c.id = unb64u(c.id); });
      return navigator.credentials.get({ publicKey: pk });
    }).then(function (cred) {
      return post(btn.getAttribute("data-finish"), csrf, encode(cred));
    }).then(function (res) {
      if (res.redirect) { window.location.assign(res.redirect); return; }
      say("Passkey added.");
    }).catch(function (e) { say(e.message || "The passkey did not work."); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-passkey]").forEach(function (btn) {
      btn.hidden = false;
      btn.addEventListener("click", function (ev) { ev.preventDefault(); run(btn); });
    });
  });
})();
