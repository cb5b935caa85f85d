// The chat socket: first-frame auth, reconnect with backoff and resume, and an outbox that
// keeps every message the person wrote until the server confirms it stored it.
import { REFUSAL_CODES, TOKEN_EXPIRED, isRetryableClose } from "./protocol.js";

const BACKOFF_BASE_MS = 1000;
const BACKOFF_MAX_MS = 30000;
const BUSY_RETRY_MS = 3000;
const TURN_ENDING_CODES = new Set([
  "safety_unavailable",
  "generation_failed",
  "internal_error",
  "busy",
  "session_not_found",
]);

export function newClientMessageId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // randomUUID exists only in secure contexts; plain http on a LAN address has none.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class ChatSocket {
  // handlers: event(e), status(state), refused(frame, error), terminal(code, error),
  //           tokenExpired(), reload()
  constructor(getToken, handlers) {
    this.getToken = getToken;
    this.on = handlers;
    this.lastSeq = 0;
    this.hasConnected = false;
    this.outbox = []; // session_message frames not yet confirmed, oldest first
    this.inFlight = null; // the one frame sent and not yet confirmed or refused
    this.ws = null;
    this.ready = false;
    this.attempt = 0;
    this.timer = null;
    this.retryAfterMs = 0;
    this.stopped = false;
    this.replyInFlight = false;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  open() {
    clearTimeout(this.timer);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    // After a first connection, ask for everything missed since the last event seen.
    const query = this.hasConnected ? `?last_seq=${this.lastSeq}` : "";
    const ws = new WebSocket(`${scheme}://${location.host}/ws${query}`);
    this.ws = ws;
    this.ready = false;
    this.lastError = null;
    // The token goes in the first frame, never in the URL (URLs end up in logs).
    ws.addEventListener("open", () => ws.send(JSON.stringify({ type: "auth", token: this.getToken() })));
    ws.addEventListener("message", (message) => this.receive(ws, message.data));
    ws.addEventListener("close", (close) => this.closed(ws, close.code));
  }

  receive(ws, data) {
    if (ws !== this.ws) return;
    let event;
    try {
      event = JSON.parse(data);
    } catch {
      return;
    }
    if (typeof event.seq === "number") {
      if (event.seq <= this.lastSeq) return; // already seen before a reconnect
      this.lastSeq = event.seq;
    }
    switch (event.type) {
      case "connection":
        this.ready = true;
        this.attempt = 0;
        this.on.status("connected");
        if (!this.hasConnected) {
          this.hasConnected = true;
          this.flush();
        }
        break; // a reconnect flushes on `resumed`, once what was missed is known
      case "resumed":
        if (!event.recovered) this.on.reload();
        this.flush();
        break;
      case "user_message":
        this.confirm(event.client_message_id);
        this.replyInFlight = true;
        break;
      case "assistant_message_complete":
        this.replyInFlight = false;
        break;
      case "error":
        this.lastError = event;
        if (this.isRefusal(event)) {
          this.refused(event);
          return;
        }
        if (TURN_ENDING_CODES.has(event.code)) this.replyInFlight = false;
        break;
      default:
        break;
    }
    this.on.event(event);
  }

  // A refusal names no message; with one frame in flight at a time it can only be that one.
  // `busy` also ends a turn whose language model is overloaded, after that turn's echo.
  isRefusal(event) {
    if (!this.inFlight || !REFUSAL_CODES.has(event.code)) return false;
    return !(event.code === "busy" && this.replyInFlight);
  }

  refused(error) {
    const frame = this.inFlight;
    this.inFlight = null;
    if (error.retryable) {
      // Kept in the outbox, sent again (same client_message_id) once waiting has fixed it.
      const waitMs = error.retry_after ? error.retry_after * 1000 : BUSY_RETRY_MS;
      this.on.refused(frame, error);
      clearTimeout(this.resendTimer);
      this.resendTimer = setTimeout(() => this.flush(), waitMs);
      return;
    }
    this.outbox = this.outbox.filter((f) => f !== frame);
    this.on.refused(frame, error);
    this.flush();
  }

  confirm(clientMessageId) {
    if (!clientMessageId) return;
    this.outbox = this.outbox.filter((f) => f.client_message_id !== clientMessageId);
    if (this.inFlight && this.inFlight.client_message_id === clientMessageId) this.inFlight = null;
    this.flush();
  }

  // Messages go one at a time, each after the previous one's confirmation, so that an error
  // about a frame is always about the one in flight.
  flush() {
    if (!this.ready || this.inFlight || this.outbox.length === 0) return;
    this.inFlight = this.outbox[0];
    this.ws.send(JSON.stringify(this.inFlight));
  }

  sendMessage(sessionId, text, clientMessageId = newClientMessageId()) {
    const existing = this.outbox.find((f) => f.client_message_id === clientMessageId);
    if (!existing) {
      this.outbox.push({
        type: "session_message",
        session_id: sessionId,
        message_text: text,
        client_message_id: clientMessageId,
      });
    }
    this.flush();
    return clientMessageId;
  }

  send(frame) {
    if (this.ready) this.ws.send(JSON.stringify(frame));
    return this.ready;
  }

  closed(ws, code) {
    if (ws !== this.ws) return;
    this.ready = false;
    // Whatever was in flight is sent again after the reconnect, with the same id.
    this.inFlight = null;
    if (this.stopped) return;
    if (code === TOKEN_EXPIRED) {
      this.on.status("signed-out");
      this.on.tokenExpired();
      return;
    }
    if (!isRetryableClose(code)) {
      this.on.status("closed");
      this.on.terminal(code, this.lastError);
      return;
    }
    this.on.status("reconnecting");
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
    this.attempt += 1;
    // Jitter spreads a restarted server's clients out; never sooner than its retry_after.
    const delay = Math.max(ceiling * (0.5 + Math.random() * 0.5), (this.lastError?.retry_after || 0) * 1000);
    this.timer = setTimeout(() => this.open(), delay);
  }

  // A fresh token after `token_expiring` (on the open socket), or after a 4002 (reconnect).
  refreshed(token) {
    if (this.ready) this.send({ type: "auth", token });
    else if (!this.stopped) this.open();
  }
}
