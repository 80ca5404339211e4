// The sign-in form: an API key in, a session cookie out (POST /api/v1/session).

import { api } from "./api.js";
import { h, replace } from "./dom.js";

/** Shows the form in `root` with an optional `notice`; resolves once signed in. */
export function showSignIn(root, notice) {
  return new Promise((resolve) => {
    const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true, spellcheck: "false", "aria-describedby": "token-help" });
    const error = h("p", { class: "form-error", role: "alert", id: "signin-error" });
    const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
    const form = h("form", { class: "signin card", "aria-labelledby": "signin-h" },
      h("h1", { id: "signin-h" }, "Sign in to actlog"),
      notice ? h("p", { class: "notice", role: "status" }, notice) : null,
      h("label", { for: "token" }, "API key"), input,
      h("p", { id: "token-help", class: "help" }, "An admin or reader key. The first admin key is printed when the server starts for the first time."),
      error, submit);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      error.textContent = "";
      submit.disabled = true;
      submit.textContent = "Signing in…";
      try {
        await api("POST", "/session", { body: { token: input.value.trim() } });
        resolve();
      } catch (e) {
        error.textContent = e.status === 401 ? "That key is not valid: it is unknown or was revoked." : `Could not sign in: ${e.message}`;
        input.setAttribute("aria-invalid", "true");
        submit.disabled = false;
        submit.textContent = "Sign in";
        input.focus();
      }
    });
    replace(root, form);
    input.focus();
  });
}
