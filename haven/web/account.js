// Signing in, staying signed in and signing out: the forms, and what this tab keeps.
import { api, ApiError } from "./api.js";

export const $ = (id) => document.getElementById(id);
// Per tab, gone when the tab closes: a shared computer keeps nothing of the person's.
export const store = window.sessionStorage;
export const KEYS = {
  token: "haven.token",
  username: "haven.username",
  session: "haven.session",
  crisis: "haven.crisis",
};

function showFieldErrors(fields) {
  for (const name of ["username", "password"]) {
    const error = $(`${name}-error`);
    error.textContent = fields[name] || "";
    error.hidden = !fields[name];
    $(name).setAttribute("aria-invalid", fields[name] ? "true" : "false");
  }
}

function showError(element, failure) {
  if (!(failure instanceof ApiError)) throw failure;
  element.textContent = failure.detail;
  element.hidden = false;
}

function currentUsername() {
  // The token's subject is an id; the name is the one this tab logged in with.
  return store.getItem(KEYS.username) || $("username").value.trim();
}

export function showAuthForm(message) {
  store.removeItem(KEYS.token);
  $("chat-view").hidden = true;
  $("logout").hidden = true;
  $("reauth-form").hidden = true;
  $("auth-view").hidden = false;
  $("auth-notice").textContent = message || "";
  $("auth-notice").hidden = !message;
  $("username").focus();
}

export function askToStaySignedIn(text) {
  $("reauth-text").textContent = text;
  $("reauth-username").value = currentUsername(); // for password managers
  $("reauth-form").hidden = false;
  $("reauth-password").focus();
}

// onSignedIn(): after a login (or a new account); onRenewed(token): a fresh token in the chat.
export function bindAccountForms({ onSignedIn, onRenewed }) {
  $("auth-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const register = event.submitter?.value === "register";
    const username = $("username").value.trim();
    const password = $("password").value;
    $("auth-error").hidden = true;
    showFieldErrors({});
    try {
      if (register) await api.register(username, password, $("locale").value);
      const { access_token: token } = await api.login(username, password);
      store.setItem(KEYS.token, token);
      store.setItem(KEYS.username, username);
      $("password").value = "";
      await onSignedIn();
    } catch (failure) {
      showError($("auth-error"), failure);
      showFieldErrors(failure.fields);
    }
  });

  $("reauth-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("reauth-error").hidden = true;
    try {
      const { access_token: token } = await api.login(currentUsername(), $("reauth-password").value);
      store.setItem(KEYS.token, token);
      $("reauth-password").value = "";
      $("reauth-form").hidden = true;
      onRenewed(token);
    } catch (failure) {
      showError($("reauth-error"), failure);
    }
  });
}

// Revokes the token on the server too, so no socket opened with it stays open.
export async function signOut() {
  const token = store.getItem(KEYS.token);
  for (const key of Object.values(KEYS)) store.removeItem(key);
  if (token) await api.logout(token).catch(() => null);
}
