// bastion's passkey pages: the only script bastion serves (CSP script-src 'self').
// It asks bastion for WebAuthn options, lets the browser talk to the authenticator and
// posts the result back; bastion verifies everything. Same origin only, CSRF in a header.
"use strict";

(function () {
  const csrf = document.body.dataset.csrf || "";

  function show(message) {
    const box = document.getElementById("passkey-error");
    box.textContent = message;
    box.hidden = false;
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrf },
      body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error(data.message || "That did not work. Try again.");
    }
    return data;
  }

  async function signIn(button) {
    const tx = button.dataset.tx || "";
    const options = await post(button.dataset.options, { tx: tx });
    const credential = await navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options),
    });
    const done = await post(button.dataset.verify, { tx: tx, credential: credential.toJSON() });
    window.location.assign(done.redirect);
  }

  async function register(button) {
    const name = document.getElementById("passkey-name").value;
    const options = await post(button.dataset.options, {});
    const credential = await navigator.credentials.create({
      publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options),
    });
    const done = await post(button.dataset.verify, { name: name, credential: credential.toJSON() });
    window.location.assign(done.redirect);
  }

  document.addEventListener("DOMContentLoaded", function () {
    for (const button of document.querySelectorAll("[data-passkey]")) {
      button.addEventListener("click", async function (event) {
        event.preventDefault();
        if (!window.PublicKeyCredential) {
          show("This browser does not support passkeys.");
          return;
        }
        button.disabled = true;
        try {
          await (button.dataset.passkey === "register" ? register(button) : signIn(button));
        } catch (error) {
          show(error.name === "NotAllowedError"
            ? "The passkey request was cancelled or timed out."
            : error.message);
        } finally {
          button.disabled = false;
        }
      });
    }
    document.body.classList.add("js-ready");
  });
})();
