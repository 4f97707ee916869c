// The middle column: one conversation's transcript (customer, bot, agent, system turns
// told apart; internal notes shaded), its typing indicator, channel limits, and the
// actions that fit it: accept/decline for an offer, the composer for one the agent holds.
import { $, channelIcon, clock, contactName, el } from "./dom.js";
import { current, entriesOf, state } from "./state.js";

const ROLE_LABEL = { customer: "Customer", bot: "Bot", agent: "Agent", system: "System", note: "Internal note" };

function entryItem(e, name) {
  const who = e.role === "customer" ? name : e.role === "agent" || e.role === "note" ? e.author || ROLE_LABEL[e.role] : ROLE_LABEL[e.role] || e.role;
  const head = el(
    "span",
    { class: "entry-head" },
    el("span", { class: "role" }, e.role === "note" ? `${ROLE_LABEL.note} · ${who}` : who),
    el("time", { datetime: new Date(e.at_ms).toISOString() }, clock(e.at_ms)),
  );
  return el("li", { class: `entry role-${e.role}`, "data-seq": e.seq }, head, el("p", { class: "text" }, e.text));
}

const CHANNEL_NAMES = { whatsapp: "WhatsApp", messenger: "Messenger", instagram: "Instagram" };

/** The channel's messaging window (the daemon's `window` frame), when it binds. */
function channelLimit(pkg, win) {
  if (!win) return null;
  const channel = CHANNEL_NAMES[pkg && pkg.channel] || "This channel";
  const until = win.until_ms ? new Date(win.until_ms).toLocaleString() : "";
  switch (win.state) {
    case "open":
      return `${channel}: replies reach the customer until ${until}.`;
    case "human_agent_only":
      return `${channel}: only your replies (not the bot) reach the customer until ${until}.`;
    case "template_only":
      return `${channel}: the 24-hour window is over; only a template can be sent${win.templates ? ` (${win.templates.join(", ")})` : ""}.`;
    case "closed":
      return `${channel}: the messaging window is closed until the customer writes again.`;
    default:
      return null;
  }
}

let shown = { id: null, nodes: new Map() };

/**
 * Brings the transcript list to `wanted` ({key, make}) keeping existing nodes, so only new
 * entries are inserted and screen readers announce only those.
 */
function patchList(list, conversationId, wanted) {
  if (shown.id !== conversationId) {
    list.replaceChildren();
    shown = { id: conversationId, nodes: new Map() };
  }
  const keep = new Map();
  wanted.forEach((w, i) => {
    const node = shown.nodes.get(w.key) || w.make();
    keep.set(w.key, node);
    if (list.children[i] !== node) list.insertBefore(node, list.children[i] || null);
  });
  while (list.children.length > wanted.length) list.lastElementChild.remove();
  shown.nodes = keep;
}

/** Redraws the middle column for the selected conversation. */
export function renderConversation() {
  const cur = current();
  document.body.dataset.view = cur ? "conversation" : "lists";
  $("empty").hidden = Boolean(cur);
  $("conv").hidden = !cur;
  if (!cur) return null;
  const { conv, kind } = cur;
  const pkg = conv.package || {};
  const name = contactName(pkg.contact);
  $("conv-title").replaceChildren(channelIcon(pkg.channel), " ", name);
  const heldBy = conv.owner && conv.owner.state === "agent" ? conv.owner.agent_id : null;
  const owner =
    kind === "mine" ? "yours" : kind === "offer" ? "offered to you" : heldBy ? `held by ${heldBy}` : "waiting in the queue";
  $("conv-meta").textContent = `${owner}${pkg.team ? ` · team ${pkg.team}` : ""}`;

  const entries = entriesOf(conv);
  const limit = channelLimit(pkg, state.windows.get(conv.id));
  $("limit").hidden = !limit;
  $("limit").textContent = limit || "";

  const log = $("transcript");
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
  const wanted = entries.map((e) => ({ key: `s:${e.seq}`, make: () => entryItem(e, name) }));
  for (const [clientId, p] of state.pendingReplies) {
    if (p.conversation_id !== conv.id) continue;
    wanted.push({
      key: `c:${clientId}`,
      make: () => {
        const li = entryItem({ seq: 0, role: "agent", text: p.text, at_ms: p.at_ms, author: "sending…" }, name);
        li.classList.add("pending");
        return li;
      },
    });
  }
  patchList(log, conv.id, wanted);
  if (atBottom) log.scrollTop = log.scrollHeight;

  $("typing").hidden = !(kind === "mine" && state.typing.has(conv.id));
  $("offer-actions").hidden = kind !== "offer";
  // A conversation someone else holds (a supervisor's view) cannot be taken from the queue.
  $("queued-actions").hidden = kind !== "queued" || Boolean(heldBy);
  if (kind === "offer") {
    const left = Math.max(0, Math.round((cur.offer.expiresAt - Date.now()) / 1000));
    $("offer-expiry").textContent = `${left} s left to accept`;
  }
  $("composer").hidden = kind !== "mine";
  conv.unread = 0;
  return cur;
}
