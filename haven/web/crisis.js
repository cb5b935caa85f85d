// The crisis panel: shown above the conversation the moment a message is assessed at high risk
// (or could not be assessed), focused so it is read out first, and kept on screen.

function digits(number) {
  return String(number || "").replace(/[^\d+]/g, "");
}

// "Text HOME to 741741" -> "HOME": prefilled so the person only has to press send.
function keyword(instruction) {
  const match = /^text\s+(.+?)\s+to\s+/i.exec(instruction || "");
  return match ? match[1] : "";
}

function setLink(link, href, text) {
  const item = link.closest("li");
  if (!href) {
    item.hidden = true;
    return;
  }
  link.href = href;
  link.textContent = text;
  item.hidden = false;
}

export function showCrisis(panel, resources) {
  panel.querySelector("#crisis-message").textContent = resources.message;
  const call = digits(resources.crisis_hotline);
  setLink(panel.querySelector("#crisis-call"), call && `tel:${call}`, `Call ${resources.crisis_hotline}`);
  const text = digits(resources.crisis_text);
  const body = keyword(resources.text_instruction);
  setLink(
    panel.querySelector("#crisis-text"),
    text && `sms:${text}${body ? `?body=${encodeURIComponent(body)}` : ""}`,
    resources.text_instruction || `Text ${resources.crisis_text}`,
  );
  const emergency = digits(resources.emergency_number);
  setLink(
    panel.querySelector("#crisis-emergency"),
    emergency && `tel:${emergency}`,
    `Emergency services: call ${resources.emergency_number}`,
  );
  const chat = /^https:\/\//.test(resources.chat_url || "") ? resources.chat_url : "";
  setLink(panel.querySelector("#crisis-chat"), chat, "Chat with a counsellor online");
  const wasHidden = panel.hidden;
  panel.hidden = false;
  // Focus only when it appears: a later escalation must not pull focus from a person typing.
  if (wasHidden) panel.focus();
  panel.scrollIntoView({ block: "nearest" });
}
