// Small DOM helpers shared by the inbox modules. Text goes in with textContent only.

/** Creates an element with attributes and optional text or children. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === undefined || v === null) continue;
    if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    node.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return node;
}

/** Shorthand for document.getElementById. */
export const $ = (id) => document.getElementById(id);

/** "3 min", "1 h 5 min": how long something has been waiting. */
export function ago(ms, now = Date.now()) {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** Clock time of a timestamp, in the agent's locale. */
export function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// Short text badges rather than emoji: they render with any font, on any machine.
const CHANNELS = {
  widget: ["web", "Website chat"],
  whatsapp: ["WA", "WhatsApp"],
  telegram: ["TG", "Telegram"],
  messenger: ["FB", "Messenger"],
  instagram: ["IG", "Instagram"],
  email: ["@", "Email"],
  discord: ["DC", "Discord"],
};

/** A badge for a channel, labelled for screen readers. */
export function channelIcon(channel) {
  const [icon, name] = CHANNELS[channel] || ["?", channel || "unknown channel"];
  return el("span", { class: `channel channel-${channel || "unknown"}`, role: "img", "aria-label": name, title: name }, icon);
}

/** A customer's name as shown in lists. */
export function contactName(contact) {
  return (contact && contact.name) || `Visitor ${(contact && contact.channel_user_id || "").slice(0, 6)}`;
}
