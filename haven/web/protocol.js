// What the client needs to know of the wire protocol (docs/protocol.md).

// Whether to reconnect after each close code: the published table, RETRYABLE_CLOSE_CODES in
// haven/errors.py (a test keeps the two equal). 1006 is the browser's own code for a socket
// that dropped without a close frame: the network, or a server that vanished.
export const RETRYABLE_CLOSE_CODES = {
  1000: false,
  1001: true,
  1008: false,
  1009: true,
  1011: true,
  1012: true,
  4001: false,
  4002: true,
  4003: false,
  4004: false,
  4008: true,
  4009: true,
  4010: false,
};
export const ABNORMAL_CLOSURE = 1006;
export const TOKEN_EXPIRED = 4002;

export function isRetryableClose(code) {
  return code === ABNORMAL_CLOSURE || RETRYABLE_CLOSE_CODES[code] === true;
}

// Why a terminal close happened, in words for the person.
export const TERMINAL_CLOSE_TEXT = {
  4001: "Please log in again to keep talking.",
  4003: "Haven is open in too many windows or devices. Close one, then try again.",
  4004: "You have been logged out. Please log in again to keep talking.",
  4010: "This account was deleted, with everything it held.",
  1008: "Haven could not open a connection from this page.",
};
export const DEFAULT_TERMINAL_TEXT = "The connection was closed. Please reload the page.";

// Errors about one frame that the server sends before storing the message: the message the
// client has in flight was not taken.
export const REFUSAL_CODES = new Set([
  "rate_limited",
  "busy",
  "empty_message",
  "message_too_long",
  "invalid_message",
  "invalid_json",
  "unknown_type",
  "session_not_found",
]);

// Calm words for every error a person can meet; the server's own fixed text is the fallback.
const ERROR_TEXT = {
  rate_limited: "You're sending messages quickly. Your message will go as soon as it can.",
  busy: "A lot is happening right now. Your message will go in a moment.",
  safety_unavailable:
    "We couldn't check your message safely just now, so it wasn't answered. Please try again.",
  generation_failed: "The reply couldn't be finished. Please try again.",
  internal_error: "Something went wrong on our side. Please try again.",
  empty_message: "That message was empty, so it wasn't sent.",
  message_too_long: "That message is too long to send. Please shorten it.",
  session_not_found: "This conversation is no longer available.",
  invalid_message: "That message couldn't be sent.",
  slow_consumer: "The connection fell behind. Reconnecting…",
};

export function errorText(event) {
  return ERROR_TEXT[event.code] || event.message || ERROR_TEXT.internal_error;
}
