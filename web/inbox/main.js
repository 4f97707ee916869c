// The agent inbox: signs in with an agent token, keeps the lists and the open conversation
// current from the agent websocket, and sends the agent's actions. No page reloads.
import { AgentConnection } from "./connection.js";
import { alertOffer, askNotifications, unlockSound } from "./alerts.js";
import { renderConversation } from "./conversation.js";
import { $, contactName, el } from "./dom.js";
import { renderLists } from "./lists.js";
import { renderPackage } from "./package.js";
import { addEntries, current, emptyConversation, entriesOf, state } from "./state.js";
import { renderOverview, renderSuperviseActions, takeBreach, takeOverview, wireSupervisor } from "./supervisor.js";

const TOKEN_KEY = "handoffd.agent_token";
const QUEUE_REFRESH_MS = 4000;
const TYPING_IDLE_MS = 3000;

let conn = null;
let typingFor = null;
let typingTimer = null;

function render() {
  renderLists(pick);
  renderOverview(pick);
  const cur = renderConversation();
  renderSuperviseActions(cur);
  renderPackage($("package"), cur && cur.conv.package, cur ? entriesOf(cur.conv) : []);
  $("link").textContent = { online: "", connecting: "Connecting…", offline: "Connection lost. Reconnecting…" }[state.link];
  $("app").dataset.link = state.link;
}

/** Once a second: waiting times and offer countdowns move without redrawing transcripts. */
function tick() {
  renderLists(pick);
  renderOverview(pick);
  const cur = current();
  if (cur && cur.kind === "offer") renderConversation();
}

function pick(id) {
  state.selected = id;
  $("composer-error").textContent = "";
  $("conv-error").textContent = "";
  if (!state.mine.has(id) && !state.offers.has(id)) conn.send({ type: "get_conversation", conversation_id: id });
  else if (state.mine.has(id)) state.mine.get(id).unread = 0;
  render();
  $("transcript").scrollTop = $("transcript").scrollHeight;
}

function refreshQueue() {
  conn && conn.send({ type: "get_queue" });
}

function onFrame(f) {
  switch (f.type) {
    case "welcome": {
      state.agent = f.agent;
      state.presence = f.presence;
      $("me").textContent = `${f.agent.name}${f.agent.supervisor ? " (supervisor)" : ""} · ${f.agent.teams.join(", ")} · up to ${f.agent.capacity}`;
      if (f.agent.supervisor) conn.send({ type: "get_overview" });
      $("presence").checked = f.presence === "online";
      $("presence-label").textContent = f.presence === "online" ? "Online" : "Away";
      $("teams").replaceChildren(...f.agent.teams.map((t) => el("option", { value: t })));
      state.offers.clear(); // open offers are sent again right after the welcome
      for (const id of [...state.mine.keys()]) if (!f.conversations.includes(id)) state.mine.delete(id);
      for (const id of f.conversations) {
        if (!state.mine.has(id)) state.mine.set(id, emptyConversation(id));
        conn.send({ type: "get_conversation", conversation_id: id });
      }
      refreshQueue();
      break;
    }
    case "offer": {
      state.offers.set(f.conversation_id, { package: f.package, expiresAt: Date.now() + f.expires_in_ms });
      const why = (f.package.triggers || []).map((t) => t.evidence || t.trigger).join("; ");
      alertOffer(contactName(f.package.contact), why);
      if (!state.selected) state.selected = f.conversation_id;
      refreshQueue();
      break;
    }
    case "offer_withdrawn":
      state.offers.delete(f.conversation_id);
      if (state.selected === f.conversation_id && !state.mine.has(f.conversation_id)) state.selected = null;
      refreshQueue();
      break;
    case "assigned": {
      const conv = state.mine.get(f.conversation_id) || emptyConversation(f.conversation_id);
      conv.package = f.package;
      addEntries(conv, f.package.transcript);
      state.mine.set(f.conversation_id, conv);
      state.offers.delete(f.conversation_id);
      state.viewing.delete(f.conversation_id);
      state.selected = f.conversation_id;
      $("conv-error").textContent = "";
      refreshQueue();
      break;
    }
    case "conversation": {
      const mine = f.owner && f.owner.state === "agent" && state.agent && f.owner.agent_id === state.agent.id;
      const target = mine ? state.mine : state.viewing;
      const conv = target.get(f.conversation_id) || emptyConversation(f.conversation_id);
      conv.package = f.package || conv.package || { conversation_id: f.conversation_id };
      conv.owner = f.owner;
      if (f.window) state.windows.set(f.conversation_id, f.window);
      addEntries(conv, f.transcript);
      target.set(f.conversation_id, conv);
      break;
    }
    case "message": {
      const conv = state.mine.get(f.conversation_id);
      if (!conv) break;
      const added = addEntries(conv, [f.message]);
      if (f.message.role === "customer") {
        state.typing.delete(f.conversation_id);
        // Entities and sentiment are worked out by the daemon: fetch the fresh package.
        if (added) conn.send({ type: "get_conversation", conversation_id: f.conversation_id });
      }
      if (added && state.selected !== f.conversation_id) conv.unread += added;
      break;
    }
    case "window":
      state.windows.set(f.conversation_id, f.window);
      break;
    case "overview":
      takeOverview(f);
      break;
    case "sla_breach":
      takeBreach(f);
      break;
    case "typing":
      if (f.active) state.typing.add(f.conversation_id);
      else state.typing.delete(f.conversation_id);
      break;
    case "released":
      state.mine.delete(f.conversation_id);
      state.windows.delete(f.conversation_id);
      state.typing.delete(f.conversation_id);
      if (state.selected === f.conversation_id) state.selected = null;
      refreshQueue();
      break;
    case "queue": {
      // Pushed queue frames (manual teams) carry no contact: keep the names already known.
      const known = new Map(state.queue.map((q) => [q.conversation_id, q.contact]));
      state.queue = f.entries.map((q) => (q.contact ? q : { ...q, contact: known.get(q.conversation_id) }));
      break;
    }
    case "ack":
      if (f.request === "presence") refreshQueue();
      // A supervisor's assign or transfer changed a conversation they are looking at.
      if ((f.request === "assign" || f.request === "transfer") && state.viewing.has(f.conversation_id)) {
        conn.send({ type: "get_conversation", conversation_id: f.conversation_id });
        refreshQueue();
      }
      if (f.request === "reply" && f.client_id) {
        state.pendingReplies.delete(f.client_id);
        const conv = state.mine.get(f.conversation_id);
        // The echo of a reply resent after a drop may have been lost with the connection.
        if (conv && f.seq && !conv.entries.has(f.seq)) conn.send({ type: "get_conversation", conversation_id: f.conversation_id });
      }
      break;
    case "error":
      if (f.request === "reply") {
        for (const k of [...state.pendingReplies.keys()]) if (!conn.pendingReplies.has(k)) state.pendingReplies.delete(k);
      }
      $(f.request === "reply" || f.request === "note" ? "composer-error" : "conv-error").textContent =
        `${f.request ? f.request + ": " : ""}${f.message}`;
      if (f.request === "get_conversation" && !state.mine.has(state.selected)) state.selected = null;
      break;
    default:
      break;
  }
  render();
}

function setTyping(active) {
  const cur = current();
  clearTimeout(typingTimer);
  if (active && cur && cur.kind === "mine") {
    if (typingFor !== cur.conv.id) {
      if (typingFor) conn.send({ type: "typing", conversation_id: typingFor, active: false });
      typingFor = cur.conv.id;
      conn.send({ type: "typing", conversation_id: typingFor, active: true });
    }
    typingTimer = setTimeout(() => setTyping(false), TYPING_IDLE_MS);
  } else if (typingFor) {
    conn.send({ type: "typing", conversation_id: typingFor, active: false });
    typingFor = null;
  }
}

function wireActions() {
  wireSupervisor(
    (frame) => conn && conn.send(frame),
    () => state.selected,
  );
  $("presence").addEventListener("change", (e) => {
    const status = e.target.checked ? "online" : "away";
    if (conn.send({ type: "presence", status })) {
      state.presence = status;
      $("presence-label").textContent = status === "online" ? "Online" : "Away";
    } else {
      e.target.checked = !e.target.checked;
    }
  });
  $("notify").addEventListener("click", async () => {
    unlockSound();
    const p = await askNotifications();
    $("notify").textContent = p === "granted" ? "Alerts on" : "Sound only";
  });
  $("signout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    conn.stop();
    location.reload();
  });
  $("back").addEventListener("click", () => {
    state.selected = null;
    render();
  });
  $("accept").addEventListener("click", () => {
    unlockSound();
    conn.send({ type: "accept", conversation_id: state.selected });
  });
  $("decline").addEventListener("click", () => conn.send({ type: "decline", conversation_id: state.selected }));
  $("claim").addEventListener("click", () => {
    unlockSound();
    $("conv-error").textContent = "";
    conn.send({ type: "claim", conversation_id: state.selected });
  });
  const text = $("text");
  text.addEventListener("input", () => {
    const note = document.querySelector('input[name="mode"]:checked').value === "note";
    setTyping(!note && text.value.trim().length > 0);
  });
  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      $("composer").requestSubmit();
    }
  });
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", () => {
      const note = radio.value === "note" && radio.checked;
      $("composer").classList.toggle("note-mode", note);
      text.placeholder = note ? "Write an internal note (the customer never sees it)…" : "Write a reply…";
    });
  }
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const cur = current();
    const body = text.value.trim();
    if (!cur || cur.kind !== "mine" || !body) return;
    const note = document.querySelector('input[name="mode"]:checked').value === "note";
    if (note) {
      if (!conn.send({ type: "note", conversation_id: cur.conv.id, text: body })) {
        $("composer-error").textContent = "Not connected: the note was not sent.";
        return;
      }
    } else {
      const clientId = conn.reply(cur.conv.id, body);
      state.pendingReplies.set(clientId, { conversation_id: cur.conv.id, text: body, at_ms: Date.now() });
    }
    $("composer-error").textContent = "";
    text.value = "";
    setTyping(false);
    render();
  });
  $("close").addEventListener("click", () => {
    const cur = current();
    if (cur && cur.kind === "mine") conn.send({ type: "close", conversation_id: cur.conv.id });
  });
  $("transfer").addEventListener("click", () => {
    const cur = current();
    const to = $("transfer-to").value.trim();
    if (!cur || cur.kind !== "mine" || !to) return;
    const frame = { type: "transfer", conversation_id: cur.conv.id };
    frame[$("transfer-kind").value === "agent" ? "to_agent" : "to_team"] = to;
    conn.send(frame);
    $("transfer-to").value = "";
  });
}

function signIn(token) {
  $("signin").hidden = true;
  $("app").hidden = false;
  conn = new AgentConnection(token, {
    frame: onFrame,
    state: (s) => {
      state.link = s;
      if (s !== "online") state.typing.clear();
      render();
    },
    rejected: (message) => {
      sessionStorage.removeItem(TOKEN_KEY);
      $("app").hidden = true;
      $("signin").hidden = false;
      $("signin-error").textContent = message || "That token was not accepted.";
    },
  });
  conn.start();
  setInterval(tick, 1000);
  setInterval(refreshQueue, QUEUE_REFRESH_MS);
}

function boot() {
  wireActions();
  $("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = $("token").value.trim();
    if (!token) return;
    unlockSound();
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token").value = "";
    signIn(token);
  });
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) signIn(saved);
}

boot();
