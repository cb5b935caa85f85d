// Haven's web client: log in, pick a conversation, talk; crisis resources come first.
import { $, KEYS, askToStaySignedIn, bindAccountForms, showAuthForm, signOut, store } from "./account.js";
import { api, ApiError } from "./api.js";
import { showCrisis } from "./crisis.js";
import { DEFAULT_TERMINAL_TEXT, TERMINAL_CLOSE_TEXT, errorText } from "./protocol.js";
import { ChatSocket, newClientMessageId } from "./socket.js";
import { Transcript } from "./transcript.js";

const TURN_ERRORS = new Set(["safety_unavailable", "generation_failed", "internal_error", "busy"]);
const STATUS_TEXT = {
  idle: "",
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  closed: "Disconnected",
  "signed-out": "Signed out",
};

const transcript = new Transcript($("transcript"));
let socket = null;
let sessionId = null;
let replyInFlight = null; // message_id of the reply being written in this conversation
const sent = new Map(); // client_message_id -> { sessionId, text } of this tab's messages
const counsellors = new Map(); // session id -> display name of the counsellor in it

// While a counsellor is in this conversation, say so above it.
function showCounsellor() {
  const banner = $("counsellor-banner");
  const name = counsellors.get(sessionId);
  banner.textContent = name
    ? `${name}, a trained counsellor, has joined this conversation and is replying to you.`
    : "";
  banner.hidden = !name;
}

function setStatus(state) {
  const status = $("connection-status");
  status.dataset.state = state;
  status.textContent = STATUS_TEXT[state] ?? "";
}

function notice(text, action) {
  const box = $("chat-notice");
  $("chat-notice-text").textContent = text || "";
  box.hidden = !text;
  const button = $("chat-notice-action");
  button.hidden = !action;
  button.onclick = action || null;
}

// --- accounts -----------------------------------------------------------------------------

function showAuth(message) {
  socket?.stop();
  socket = null;
  setStatus("idle");
  showAuthForm(message);
}

async function logout() {
  socket?.stop();
  await signOut();
  $("crisis-panel").hidden = true;
  showAuth("You have logged out.");
}

// REST answers 401 when the token is no longer good: back to the login form.
async function authorised(call) {
  try {
    return await call(store.getItem(KEYS.token));
  } catch (failure) {
    if (failure instanceof ApiError && failure.status === 401) {
      showAuth("Please log in again to carry on.");
      return null;
    }
    notice(failure instanceof ApiError ? failure.detail : errorText({}));
    return null;
  }
}

// --- conversations ------------------------------------------------------------------------

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function renderSessions(sessions) {
  const list = $("session-list");
  list.replaceChildren();
  for (const session of sessions) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "session";
    button.textContent = dateFormat.format(new Date(session.created_at));
    button.dataset.sessionId = session.id;
    if (session.id === sessionId) button.setAttribute("aria-current", "true");
    button.addEventListener("click", () => openSession(session.id));
    const item = document.createElement("li");
    item.append(button);
    list.append(item);
  }
}

async function loadSessions() {
  const sessions = await authorised((token) => api.sessions(token));
  if (sessions === null) return null;
  sessions.sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
  return sessions;
}

async function openSession(id) {
  sessionId = id;
  store.setItem(KEYS.session, id);
  for (const button of $("session-list").querySelectorAll("button")) {
    button.toggleAttribute("aria-current", button.dataset.sessionId === id);
  }
  replyInFlight = null;
  $("stop").hidden = true;
  showCounsellor();
  const messages = await authorised((token) => api.messages(token, id));
  if (messages !== null && sessionId === id) transcript.showHistory(messages);
}

async function newSession() {
  const created = await authorised((token) => api.newSession(token));
  if (created === null) return;
  const sessions = await loadSessions();
  sessionId = created.id;
  if (sessions) renderSessions(sessions);
  await openSession(created.id);
  $("message").focus();
}

async function showChat() {
  $("auth-view").hidden = true;
  $("chat-view").hidden = false;
  $("logout").hidden = false;
  notice("");
  const sessions = await loadSessions();
  if (sessions === null) return;
  if (sessions.length === 0) return newSession().then(connect);
  const remembered = sessions.find((s) => s.id === store.getItem(KEYS.session));
  sessionId = (remembered || sessions[0]).id;
  renderSessions(sessions);
  await openSession(sessionId);
  const crisis = store.getItem(KEYS.crisis);
  if (crisis) showCrisis($("crisis-panel"), JSON.parse(crisis));
  connect();
  $("message").focus();
}

// --- the socket ---------------------------------------------------------------------------

function connect() {
  socket?.stop();
  setStatus("connecting");
  socket = new ChatSocket(() => store.getItem(KEYS.token), {
    event: onEvent,
    status: setStatus,
    refused: onRefused,
    terminal: onTerminal,
    tokenExpired: () => askToStaySignedIn("Your sign-in has expired. Enter your password to carry on."),
    reload: () => sessionId && openSession(sessionId),
  });
  socket.start();
}

function onEvent(event) {
  const here = event.session_id === undefined || event.session_id === sessionId;
  switch (event.type) {
    case "connection":
      notice("");
      break;
    case "safety_escalation":
      // Whichever conversation it came from, the person sees the resources now.
      store.setItem(KEYS.crisis, JSON.stringify(event.emergency_resources));
      showCrisis($("crisis-panel"), event.emergency_resources);
      break;
    case "user_message":
      if (here) transcript.confirmUser(event);
      break;
    case "assistant_message_start":
      if (!here) break;
      transcript.startReply(event.message_id);
      replyInFlight = event.message_id;
      $("stop").hidden = false;
      break;
    case "assistant_message_chunk":
      if (here) transcript.appendChunk(event.message_id, event.chunk);
      break;
    case "assistant_message_complete":
      if (!here) break;
      transcript.completeReply(event.message_id, event.message);
      if (replyInFlight === event.message_id) endReply();
      break;
    case "counsellor_joined":
      counsellors.set(event.session_id, event.counsellor.display_name);
      if (here) showCounsellor();
      break;
    case "counsellor_message":
      if (here) {
        const { id, text, counsellor } = event.message;
        transcript.addCounsellor(id, text, counsellor.display_name);
      }
      break;
    case "counsellor_left":
      if (!counsellors.delete(event.session_id) || !here) break;
      showCounsellor();
      transcript.addNotice(
        `${event.counsellor.display_name} has left the conversation. Haven's assistant will answer your next message.`,
      );
      break;
    case "error":
      onError(event);
      break;
    case "token_expiring":
      askToStaySignedIn("To stay signed in, please enter your password again.");
      break;
    case "authenticated":
      $("reauth-form").hidden = true;
      break;
    default:
      break; // newer event types are ignored, as the protocol asks
  }
}

function endReply() {
  replyInFlight = null;
  $("stop").hidden = true;
}

function onError(event) {
  if (event.code === "nothing_to_cancel") return endReply();
  if (!TURN_ERRORS.has(event.code)) return notice(errorText(event));
  transcript.abandonStreaming();
  endReply();
  const last = [...sent.entries()].pop();
  const retry =
    event.retryable && last && last[1].sessionId === sessionId
      ? () => {
          transcript.addPending(last[0], last[1].text);
          socket.sendMessage(last[1].sessionId, last[1].text, last[0]);
        }
      : null;
  transcript.addNotice(errorText(event), retry);
}

function onRefused(frame, error) {
  let text = errorText(error);
  if (error.retryable && error.retry_after) {
    text = `${text} (about ${Math.ceil(error.retry_after)} s)`;
  }
  transcript.markUnsent(frame.client_message_id, text, error.retryable);
  // Nothing the person wrote is thrown away: a message that cannot go comes back to edit.
  if (!error.retryable && !$("message").value) $("message").value = frame.message_text;
}

function onTerminal(code, error) {
  if (code === 4001 || code === 4004) {
    showAuth(TERMINAL_CLOSE_TEXT[code]);
    return;
  }
  const text = TERMINAL_CLOSE_TEXT[code] || (error && errorText(error)) || DEFAULT_TERMINAL_TEXT;
  notice(text, () => {
    notice("");
    connect();
  });
}

// --- composing ----------------------------------------------------------------------------

function onSend(event) {
  event.preventDefault();
  const box = $("message");
  const text = box.value;
  if (!text.trim() || !sessionId || !socket) return;
  const clientId = newClientMessageId();
  sent.set(clientId, { sessionId, text });
  transcript.addPending(clientId, text);
  socket.sendMessage(sessionId, text, clientId);
  box.value = "";
  box.focus();
}

function onComposerKey(event) {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
}

function onStop() {
  if (replyInFlight) socket?.send({ type: "cancel", message_id: replyInFlight });
}

bindAccountForms({ onSignedIn: showChat, onRenewed: (token) => socket?.refreshed(token) });
$("logout").addEventListener("click", logout);
$("new-session").addEventListener("click", newSession);
$("composer").addEventListener("submit", onSend);
$("message").addEventListener("keydown", onComposerKey);
$("stop").addEventListener("click", onStop);

if (store.getItem(KEYS.token)) showChat();
else showAuth();
