// The counsellor console: the live queue of escalated conversations, join one, read it as it
// happens, write to the person, hand back. Text from people is only ever set with textContent.
import { api, ApiError } from "./api.js";

const $ = (id) => document.getElementById(id);
const store = window.sessionStorage;
const TOKEN_KEY = "haven.counsellor.token";
const LEVEL_TEXT = { critical: "Critical", high: "High", unknown: "Not assessed" };
const ERROR_TEXT = {
  forbidden: "This account is not a counsellor's.",
  not_found: "That conversation is no longer in the queue.",
  already_joined: "Another counsellor is already in that conversation.",
  unsafe_message: "That message was not sent: it failed the safety check. Please rephrase it.",
};
const WHO = { user: "Person", assistant: "Assistant" };

let socket = null;
let joined = null; // the session id of the conversation this console is in
let personName = "";
const shown = new Set(); // message ids in the transcript (a resend or replay shows once)

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function setStatus(state, text) {
  const status = $("connection-status");
  status.dataset.state = state;
  status.textContent = text;
}

function notice(text) {
  $("desk-notice").textContent = text || "";
  $("desk-notice").hidden = !text;
}

// --- signing in ---------------------------------------------------------------------------

async function logIn(event) {
  event.preventDefault();
  $("auth-error").hidden = true;
  try {
    const answer = await api.login($("username").value.trim(), $("password").value);
    store.setItem(TOKEN_KEY, answer.access_token);
    await start();
  } catch (failure) {
    $("auth-error").textContent = failure instanceof ApiError ? failure.detail : String(failure);
    $("auth-error").hidden = false;
  }
}

function logOut() {
  socket?.close();
  socket = null;
  store.removeItem(TOKEN_KEY);
  window.location.reload();
}

async function start() {
  try {
    await refreshQueue();
  } catch (failure) {
    store.removeItem(TOKEN_KEY);
    $("auth-error").textContent =
      failure instanceof ApiError && failure.status === 403 ? ERROR_TEXT.forbidden : failure.detail;
    $("auth-error").hidden = false;
    return;
  }
  $("auth-view").hidden = true;
  $("desk-view").hidden = false;
  $("logout").hidden = false;
  connect();
}

// --- the queue ----------------------------------------------------------------------------

async function refreshQueue() {
  const entries = await api.queue(store.getItem(TOKEN_KEY));
  const list = $("queue");
  list.replaceChildren();
  for (const entry of entries) {
    const item = element("li", "queue-entry");
    item.dataset.sessionId = entry.session_id;
    item.dataset.level = entry.risk_level;
    item.append(element("span", `level level-${entry.risk_level}`, LEVEL_TEXT[entry.risk_level] || entry.risk_level));
    item.append(element("span", "who", entry.display_name));
    const at = new Date(entry.last_escalation_at);
    item.append(element("span", "hint", at.toLocaleTimeString()));
    if (entry.joined_by) {
      item.append(element("span", "hint", `with ${entry.joined_by}`));
    } else {
      const button = element("button", "secondary", `Join ${entry.display_name}`);
      button.type = "button";
      button.addEventListener("click", () => join(entry.session_id));
      item.append(button);
    }
    list.append(item);
  }
  $("queue-empty").hidden = entries.length > 0;
}

// --- the socket ---------------------------------------------------------------------------

function connect() {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(`${scheme}//${window.location.host}/ws`);
  setStatus("connecting", "Connecting…");
  // The token goes in the first frame, so it stays out of URLs and logs.
  socket.addEventListener("open", () =>
    socket.send(JSON.stringify({ type: "auth", token: store.getItem(TOKEN_KEY) })),
  );
  socket.addEventListener("message", (message) => onEvent(JSON.parse(message.data)));
  socket.addEventListener("close", () => {
    setStatus("closed", "Disconnected");
    if (socket) setTimeout(connect, 2000); // the conversation stays ours for the grace period
  });
}

function send(frame) {
  socket.send(JSON.stringify(frame));
}

function join(sessionId) {
  notice("");
  send({ type: "join", session_id: sessionId });
}

function onEvent(event) {
  const here = event.session_id !== undefined && event.session_id === joined;
  switch (event.type) {
    case "connection":
      setStatus("connected", "Connected");
      if (joined) join(joined); // back after a drop: the history again, then live
      break;
    case "escalation_queued":
      refreshQueue().catch(() => notice("The queue could not be loaded."));
      break;
    case "session_history":
      openConversation(event);
      break;
    case "user_message":
      if (here) addMessage(event.message_id, "user", event.text);
      break;
    case "assistant_message_complete":
      if (here) addMessage(event.message_id, "assistant", event.message.text);
      break;
    case "counsellor_message":
      if (here) addMessage(event.message.id, "counsellor", event.message.text, event.message.counsellor.display_name);
      break;
    case "safety_escalation":
      if (here) addNote(`Risk assessed: ${LEVEL_TEXT[event.risk_level] || event.risk_level}. Crisis resources were shown to ${personName}.`);
      break;
    case "counsellor_left":
      if (here) closeConversation(event.reason === "timed_out" ? "You were away too long: the assistant answers again." : "You left: the assistant answers again.");
      break;
    case "error":
      notice(ERROR_TEXT[event.code] || event.message);
      break;
    default:
      break;
  }
}

// --- the conversation ---------------------------------------------------------------------

function openConversation(history) {
  joined = history.session_id;
  personName = history.display_name;
  shown.clear();
  $("transcript").replaceChildren();
  $("conversation-title").textContent = `With ${personName}`;
  for (const message of history.messages) {
    addMessage(message.id, message.role, message.text, message.counsellor?.display_name);
  }
  $("composer").hidden = false;
  $("message").focus();
  refreshQueue().catch(() => {});
}

function closeConversation(text) {
  joined = null;
  $("composer").hidden = true;
  $("conversation-title").textContent = "No conversation joined";
  addNote(text);
  refreshQueue().catch(() => {});
}

function addMessage(id, role, text, counsellorName) {
  if (shown.has(id)) return;
  shown.add(id);
  const item = element("li", `message ${role === "user" ? "assistant" : "user"} from-${role}`);
  const who = role === "counsellor" ? `${counsellorName || "Counsellor"} (counsellor)` : role === "user" ? personName : WHO[role];
  item.append(element("p", "name who", who));
  item.append(element("p", "text", text));
  $("transcript").append(item);
  $("transcript").scrollTop = $("transcript").scrollHeight;
}

function addNote(text) {
  const item = element("li", "notice");
  item.append(element("p", "text", text));
  $("transcript").append(item);
}

function onSend(event) {
  event.preventDefault();
  const text = $("message").value;
  if (!text.trim() || !joined) return;
  send({
    type: "counsellor_message",
    session_id: joined,
    message_text: text,
    client_message_id: crypto.randomUUID(),
  });
  $("message").value = "";
}

$("auth-form").addEventListener("submit", logIn);
$("logout").addEventListener("click", logOut);
$("composer").addEventListener("submit", onSend);
$("message").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) onSend(event);
});
$("leave").addEventListener("click", () => joined && send({ type: "leave", session_id: joined }));
if (store.getItem(TOKEN_KEY)) start();
