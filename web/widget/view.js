// The widget's DOM: a launcher button and a chat panel inside a shadow root, so the host
// page's styles and ours never mix. Text is always set with textContent, never as HTML.

import { stringsFor } from "./strings.js";

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A speech bubble drawn in SVG (no icon font, no emoji font needed). */
function bubbleIcon() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "28");
  svg.setAttribute("height", "28");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", "M4 4h16a2 2 0 0 1 2 2v9a2 2 0 0 1-2 2H10l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z");
  path.setAttribute("fill", "currentColor");
  svg.append(path);
  return svg;
}

/** Builds the widget and gives the app a few methods to update it. */
export function buildView(options, handlers) {
  const t = stringsFor(options.language);
  const greeting = options.greeting === null ? t.greeting : options.greeting;
  const statusText = (s) =>
    s.state === "queued"
      ? s.position
        ? `${t.queued} ${t.position(s.position)}${s.eta_secs ? ` ${t.eta(Math.round(s.eta_secs / 60))}` : ""}`
        : t.queued
      : s.state === "agent"
        ? t.with(s.agent_name || t.person)
        : t.assistant;
  const host = el("div", { id: "handoffd-widget" });
  if (options.color) host.style.setProperty("--hd-accent", options.color);
  const root = host.attachShadow({ mode: "open" });
  root.append(el("link", { rel: "stylesheet", href: options.server + "/web/widget/widget.css" }));

  const wrap = el("div", { class: `hd-wrap hd-${options.position}` });
  const panelId = "hd-panel";
  const launcher = el("button", {
    class: "hd-launcher",
    type: "button",
    "aria-expanded": "false",
    "aria-controls": panelId,
    "aria-label": t.open,
  });
  launcher.append(bubbleIcon());

  const panel = el("section", { id: panelId, class: "hd-panel", role: "dialog", "aria-label": options.title, hidden: "" });
  if (options.language) panel.setAttribute("lang", options.language);
  const header = el("header", { class: "hd-header" });
  const titles = el("div", { class: "hd-titles" });
  const title = el("h2", { class: "hd-title" }, options.title);
  const status = el("p", { class: "hd-status", role: "status", "aria-live": "polite" }, t.assistant);
  titles.append(title, status);
  const close = el("button", { class: "hd-close", type: "button", "aria-label": t.close }, "×");
  header.append(titles, close);

  const banner = el("p", { class: "hd-banner", role: "status", hidden: "" });
  const log = el("ol", { class: "hd-log", role: "log", "aria-live": "polite", "aria-label": t.log, tabindex: "0" });
  const typing = el("p", { class: "hd-typing", "aria-live": "polite", hidden: "" }, t.typing);
  const form = el("form", { class: "hd-form" });
  const label = el("label", { class: "hd-sr", for: "hd-input" }, t.input);
  const input = el("textarea", { id: "hd-input", class: "hd-input", rows: "1", maxlength: "8000", placeholder: t.placeholder, autocomplete: "off" });
  const send = el("button", { class: "hd-send", type: "submit", "aria-label": t.sendLabel }, t.send);
  form.append(label, input, send);
  panel.append(header, banner, log, typing, form);
  wrap.append(panel, launcher);
  root.append(wrap);
  document.body.append(host);

  function setOpen(open) {
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    launcher.setAttribute("aria-label", open ? t.close : t.open);
    wrap.classList.toggle("hd-open", open);
    if (open) {
      input.focus();
      log.scrollTop = log.scrollHeight;
    } else {
      launcher.focus();
    }
  }
  launcher.addEventListener("click", () => setOpen(panel.hidden));
  close.addEventListener("click", () => setOpen(false));
  panel.addEventListener("keydown", (e) => {
    if (e.key === "Escape") setOpen(false);
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    handlers.send(text);
    handlers.typing(false);
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  input.addEventListener("input", () => handlers.typing(input.value.trim().length > 0));

  let nodes = new Map(); // render key -> <li>

  function item(role, text, extra) {
    const li = el("li", { class: `hd-msg hd-${role}` });
    const who = { customer: t.you, bot: t.assistant, system: t.notice, agent: extra.author || t.agent }[role] || role;
    li.append(el("span", { class: "hd-who" }, who), el("span", { class: "hd-text" }, text));
    const choices = extra.quick_replies || [];
    if (choices.length) {
      // One tap sends the choice as the customer's message; the buttons go away once the
      // customer has written after this message (see render).
      const group = el("div", { class: "hd-quick", role: "group", "aria-label": t.quickReplies || "Suggested replies" });
      for (const choice of choices) {
        const b = el("button", { class: "hd-quick-reply", type: "button" }, choice);
        b.addEventListener("click", () => {
          handlers.send(choice);
          input.focus();
        });
        group.append(b);
      }
      li.append(group);
    }
    return li;
  }

  return {
    open: () => setOpen(true),
    /**
     * Shows the greeting, known messages, then those still being sent. Nodes are kept by
     * key and only new ones are inserted, so screen readers announce only what is new.
     */
    render(messages, pending) {
      const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
      const wanted = [];
      if (greeting) wanted.push({ key: "greeting", make: () => item("greeting", greeting, { author: "" }) });
      for (const m of messages) {
        const key = m.client_id ? `c:${m.client_id}` : `s:${m.seq}`;
        wanted.push({ key, seq: m.seq, make: () => item(m.role, m.text, { author: m.author_name, quick_replies: m.quick_replies }) });
      }
      for (const p of pending) {
        wanted.push({ key: `c:${p.client_id}`, pending: true, make: () => item("customer", p.text, {}) });
      }
      const keep = new Map();
      wanted.forEach((w, i) => {
        const node = nodes.get(w.key) || w.make();
        node.classList.toggle("hd-pending", Boolean(w.pending));
        if (w.seq) node.dataset.seq = String(w.seq);
        keep.set(w.key, node);
        if (log.children[i] !== node) log.insertBefore(node, log.children[i] || null);
      });
      while (log.children.length > wanted.length) log.lastElementChild.remove();
      nodes = keep;
      // Quick replies answer the latest question only: once the customer has written after
      // a message, its buttons go.
      const lastCustomer = [...messages].reverse().find((m) => m.role === "customer");
      const answered = pending.length > 0 ? Infinity : lastCustomer ? lastCustomer.seq : -1;
      for (const group of log.querySelectorAll(".hd-quick")) {
        const seq = Number(group.parentElement?.dataset.seq ?? -1);
        if (seq < answered) group.remove();
      }
      if (atBottom || pending.length) log.scrollTop = log.scrollHeight;
    },
    status(s) {
      status.textContent = statusText(s);
      wrap.dataset.state = s.state;
    },
    connection(state) {
      wrap.dataset.connection = state;
      banner.hidden = state === "online";
      banner.textContent = state === "offline" ? t.offline : t.connecting;
    },
    typing(active) {
      typing.hidden = !active;
    },
  };
}
