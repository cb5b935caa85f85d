// The conversation as the person sees it. Text from people and models is only ever set with
// textContent, so nothing they write can become markup.

const NEAR_BOTTOM_PX = 80;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export class Transcript {
  constructor(list) {
    this.list = list;
    this.byMessageId = new Map();
    this.byClientId = new Map();
    this.streaming = new Set();
  }

  clear() {
    this.list.replaceChildren();
    this.byMessageId.clear();
    this.byClientId.clear();
    this.streaming.clear();
    this.updateBusy();
  }

  showHistory(messages) {
    this.clear();
    for (const message of messages) {
      if (message.role === "counsellor") {
        this.addCounsellor(message.id, message.text, message.counsellor ? message.counsellor.display_name : null);
        continue;
      }
      const item = this.item(message.role === "user" ? "user" : "assistant", message.id);
      this.setText(item, message.text);
      item.dataset.state = message.status || "complete";
      if (message.status === "cancelled") this.setMeta(item, "You stopped this reply.");
    }
    this.scrollToEnd(true);
  }

  // A message the person just wrote, shown at once; confirmed when the server stored it.
  addPending(clientId, text) {
    const item = this.item("user");
    item.dataset.clientId = clientId;
    item.dataset.state = "sending";
    this.byClientId.set(clientId, item);
    this.setText(item, text);
    this.setMeta(item, "Sending…");
    this.scrollToEnd(true);
  }

  confirmUser(event) {
    let item = this.byMessageId.get(event.message_id);
    if (!item && event.client_message_id) item = this.byClientId.get(event.client_message_id);
    if (!item) item = this.item("user"); // written on another device
    item.dataset.messageId = event.message_id;
    this.byMessageId.set(event.message_id, item);
    item.dataset.state = "sent";
    this.setText(item, event.text);
    this.setMeta(item, "");
    this.scrollToEnd();
  }

  markUnsent(clientId, text, willRetry) {
    const item = this.byClientId.get(clientId);
    if (!item) return;
    item.dataset.state = willRetry ? "waiting" : "not-sent";
    this.setMeta(item, text);
  }

  startReply(messageId) {
    const item = this.byMessageId.get(messageId) || this.item("assistant", messageId);
    item.dataset.state = "streaming";
    this.streaming.add(messageId);
    this.updateBusy();
    this.scrollToEnd();
  }

  appendChunk(messageId, chunk) {
    if (!this.byMessageId.has(messageId)) this.startReply(messageId); // joined mid-reply
    const item = this.byMessageId.get(messageId);
    if (item.dataset.state !== "streaming") return;
    item.querySelector(".text").append(chunk);
    this.scrollToEnd();
  }

  // The stored text supersedes the chunks (a replaced reply differs from what streamed).
  completeReply(messageId, message) {
    const item = this.byMessageId.get(messageId) || this.item("assistant", messageId);
    this.setText(item, message.text);
    item.dataset.state = message.status || "complete";
    this.setMeta(item, message.status === "cancelled" ? "You stopped this reply." : "");
    this.streaming.delete(messageId);
    this.updateBusy();
    this.scrollToEnd();
  }

  // A counsellor's message: their own bubble, with their name shown (never the assistant's).
  addCounsellor(messageId, text, name) {
    if (this.byMessageId.has(messageId)) return; // replayed after a reconnect
    const item = this.item("counsellor", messageId, name);
    this.setText(item, text);
    item.dataset.state = "complete";
    this.setMeta(item, "");
    this.scrollToEnd();
  }

  // A reply that stopped mid-stream is not stored: say so rather than leave half a sentence.
  abandonStreaming() {
    for (const messageId of this.streaming) {
      const item = this.byMessageId.get(messageId);
      item.dataset.state = "failed";
      this.setMeta(item, "This reply wasn't finished.");
    }
    this.streaming.clear();
    this.updateBusy();
  }

  // A turn that ended without a reply; `retry` offers to send the message again.
  addNotice(text, retry) {
    const item = element("li", "notice");
    item.append(element("p", "text", text));
    if (retry) {
      const button = element("button", "secondary", "Try again");
      button.type = "button";
      button.addEventListener("click", () => {
        item.remove();
        retry();
      });
      item.append(button);
    }
    this.list.append(item);
    this.scrollToEnd(true);
  }

  item(role, messageId, name) {
    const item = element("li", `message ${role}`);
    if (role === "counsellor") {
      item.append(element("p", "name who", name ? `${name}, counsellor` : "Counsellor"));
    } else {
      item.append(element("p", "visually-hidden who", role === "user" ? "You:" : "Haven:"));
    }
    item.append(element("p", "text"));
    item.append(element("p", "meta"));
    if (messageId) {
      item.dataset.messageId = messageId;
      this.byMessageId.set(messageId, item);
    }
    this.list.append(item);
    return item;
  }

  setText(item, text) {
    item.querySelector(".text").textContent = text;
  }

  setMeta(item, text) {
    const meta = item.querySelector(".meta");
    meta.textContent = text;
    meta.hidden = !text;
  }

  // While a reply streams the log is busy, so screen readers announce it once, complete.
  updateBusy() {
    this.list.setAttribute("aria-busy", this.streaming.size > 0 ? "true" : "false");
  }

  scrollToEnd(force = false) {
    const list = this.list;
    const near = list.scrollHeight - list.scrollTop - list.clientHeight < NEAR_BOTTOM_PX;
    if (force || near) list.scrollTop = list.scrollHeight;
  }
}
