// The hosted sign-in pages' only script: it calls latchkey's JSON API, nothing else.
"use strict";
(() => {
  const page = document.getElementById("page");
  const base = page.dataset.base;
  const $ = (id) => document.getElementById(id);
  const show = (id, text) => {
    const element = $(id);
    if (text !== undefined) element.textContent = text;
    element.hidden = false;
  };
  const fail = (data) => show("error", data.detail || data.title || "Something went wrong.");

  async function call(method, path, body) {
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem("latchkey.access");
    if (token) headers.Authorization = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = response.status === 204 ? {} : await response.json().catch(() => ({}));
    if (response.ok) $("error").hidden = true;
    return { ok: response.ok, status: response.status, data };
  }

  // WebIDL refuses null where a member is optional; the server leaves out nothing it need not.
  const withoutNulls = (value) =>
    Array.isArray(value)
      ? value.map(withoutNulls)
      : value && typeof value === "object"
        ? Object.fromEntries(
            Object.entries(value)
              .filter(([, v]) => v !== null)
              .map(([k, v]) => [k, withoutNulls(v)]),
          )
        : value;

  async function assertion(options) {
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(withoutNulls(options.publicKey));
    return (await navigator.credentials.get({ publicKey })).toJSON();
  }

  function signedIn(pair) {
    sessionStorage.setItem("latchkey.access", pair.access_token);
    $("password-form").hidden = true;
    $("second-factor").hidden = true;
    $("passkey-login").hidden = true;
    if ($("email-link")) $("email-link").hidden = true;
    show("status", "Signed in as " + pair.user.email);
    show("to-security");
  }

  function login() {
    let mfaToken = null;
    const finish = async (result) => {
      if (result.ok) return signedIn(result.data);
      if (result.status === 403 && result.data.code === "mfa_required") {
        mfaToken = result.data.mfa_token;
        $("password-form").hidden = true;
        if ($("email-link")) $("email-link").hidden = true;
        show("second-factor");
        $("mfa-passkey").hidden = !result.data.methods.includes("webauthn");
        return;
      }
      fail(result.data);
    };
    // A mailed sign-in link: the page only shows a button, and the token is spent when it is
    // pressed, never by opening the page (mail scanners open links).
    if ($("email-link")) {
      $("email-link").addEventListener("submit", async (event) => {
        event.preventDefault();
        finish(await call("POST", "/auth/email-login/verify", { token: $("email-token").value }));
      });
    }
    $("password-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      finish(await call("POST", "/auth/login", { email: $("email").value, password: $("password").value }));
    });
    $("second-factor").addEventListener("submit", async (event) => {
      event.preventDefault();
      const code = $("code").value.trim();
      const proof = /^[0-9]{6}$/.test(code) ? { totp: code } : { recovery_code: code };
      finish(await call("POST", "/auth/mfa/verify", { mfa_token: mfaToken, ...proof }));
    });
    $("mfa-passkey").addEventListener("click", async () => {
      const options = await call("POST", "/auth/mfa/webauthn/options", { mfa_token: mfaToken });
      if (!options.ok) return fail(options.data);
      const webauthn = await assertion(options.data);
      finish(await call("POST", "/auth/mfa/verify", { mfa_token: mfaToken, webauthn }));
    });
    $("passkey-login").addEventListener("click", async () => {
      const options = await call("POST", "/auth/passkey/options", {});
      if (!options.ok) return fail(options.data);
      const credential = await assertion(options.data);
      finish(await call("POST", "/auth/passkey/login", { challenge_id: options.data.challenge_id, credential }));
    });
  }

  function showCodes(codes) {
    if (!codes) return;
    const list = $("codes-list");
    list.replaceChildren(...codes.map((code) => Object.assign(document.createElement("li"), { textContent: code })));
    show("codes");
  }

  async function showFactors() {
    const overview = await call("GET", "/users/me/mfa");
    if (!overview.ok) {
      $("security").hidden = true;
      return show("signed-out");
    }
    show("security");
    $("totp-state").textContent = overview.data.totp ? "Set up." : "Not set up.";
    $("totp-start").hidden = overview.data.totp;
    $("codes-left").textContent = overview.data.recovery_codes_left + " recovery codes left.";
    $("passkeys").replaceChildren(
      ...overview.data.webauthn.map((passkey) => {
        const item = document.createElement("li");
        item.textContent = passkey.name + " ";
        const remove = Object.assign(document.createElement("button"), { type: "button", textContent: "Remove" });
        remove.addEventListener("click", async () => {
          const result = await call("DELETE", "/users/me/mfa/webauthn/" + passkey.id);
          result.ok ? showFactors() : fail(result.data);
        });
        item.append(remove);
        return item;
      }),
    );
  }

  function security() {
    $("totp-start").addEventListener("click", async () => {
      const enrolment = await call("POST", "/users/me/mfa/totp", {});
      if (!enrolment.ok) return fail(enrolment.data);
      $("totp-secret").textContent = enrolment.data.secret;
      const token = sessionStorage.getItem("latchkey.access");
      const qr = await fetch(base + "/account/security/qr", {
        method: "POST",
        headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
        body: JSON.stringify({ uri: enrolment.data.otpauth_uri }),
      });
      if (qr.ok) $("totp-qr").src = URL.createObjectURL(await qr.blob());
      show("totp-confirm");
    });
    $("totp-confirm").addEventListener("submit", async (event) => {
      event.preventDefault();
      const result = await call("POST", "/users/me/mfa/totp/confirm", { code: $("totp-code").value.trim() });
      if (!result.ok) return fail(result.data);
      $("totp-confirm").hidden = true;
      showCodes(result.data.recovery_codes);
      show("status", "Authenticator app set up.");
      showFactors();
    });
    $("passkey-add").addEventListener("click", async () => {
      const options = await call("POST", "/users/me/mfa/webauthn/options", {});
      if (!options.ok) return fail(options.data);
      const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(withoutNulls(options.data.publicKey));
      const credential = (await navigator.credentials.create({ publicKey })).toJSON();
      const result = await call("POST", "/users/me/mfa/webauthn", { name: $("passkey-name").value, credential });
      if (!result.ok) return fail(result.data);
      showCodes(result.data.recovery_codes);
      show("status", "Passkey added.");
      showFactors();
    });
    $("codes-regenerate").addEventListener("click", async () => {
      const result = await call("POST", "/users/me/mfa/recovery-codes", {});
      result.ok ? showCodes(result.data.recovery_codes) : fail(result.data);
    });
    showFactors();
  }

  // The sign-in of an OAuth authorization works by forms posted to the server; only a
  // passkey needs this script, which makes the assertion and posts it in a form like the others.
  function oauthLogin() {
    const post = (id, fields) => {
      const form = $(id);
      for (const [name, value] of Object.entries(fields)) form.elements[name].value = value;
      form.submit();
    };
    const offer = (id, handler) => {
      if (!$(id) || !window.PublicKeyCredential) return;
      $(id).hidden = false;
      $(id).addEventListener("click", handler);
    };
    offer("oauth-mfa-passkey", async () => {
      const mfaToken = $("oauth-mfa-webauthn").elements.mfa_token.value;
      const options = await call("POST", "/auth/mfa/webauthn/options", { mfa_token: mfaToken });
      if (!options.ok) return fail(options.data);
      post("oauth-mfa-webauthn", { webauthn: JSON.stringify(await assertion(options.data)) });
    });
    offer("oauth-passkey", async () => {
      const options = await call("POST", "/auth/passkey/options", {});
      if (!options.ok) return fail(options.data);
      const credential = await assertion(options.data);
      post("oauth-passkey-form", {
        challenge_id: options.data.challenge_id,
        credential: JSON.stringify(credential),
      });
    });
  }

  if ($("password-form")) login();
  if ($("oauth-passkey") || $("oauth-mfa-passkey")) oauthLogin();
  if ($("security")) security();
})();
