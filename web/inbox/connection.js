// The agent websocket (docs/agent-protocol.md) as the inbox uses it: authenticates with an
// `auth` frame, reconnects with backoff, and resends replies that were never acknowledged
// with their client_id, so a dropped connection neither loses nor doubles a reply.

const MAX_BACKOFF_MS = 10000;

/** A random client_id; getRandomValues works on plain-http pages too, unlike UUIDs. */
function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** One agent's connection, reconnecting until signed out. */
export class AgentConnection {
  constructor(token, on) {
    this.token = token;
    this.on = on; // { frame(f), state(s), rejected(message) }
    this.url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/agent/ws";
    this.ws = null;
    this.ready = false;
    this.attempts = 0;
    this.stopped = false;
    this.pendingReplies = new Map(); // client_id -> reply frame, until acknowledged
  }

  start() {
    this.connect();
  }

  stop() {
    this.stopped = true;
    if (this.ws) this.ws.close();
  }

  connect() {
    if (this.stopped) return;
    this.on.state("connecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.ready = false;
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: this.token }));
    ws.onmessage = (e) => {
      let f;
      try {
        f = JSON.parse(e.data);
      } catch {
        return;
      }
      this.onFrame(f);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.ready = false;
      if (this.stopped) return;
      this.on.state("offline");
      const delay = Math.min(MAX_BACKOFF_MS, 300 * 2 ** this.attempts++);
      setTimeout(() => this.connect(), delay);
    };
  }

  onFrame(f) {
    if (f.type === "welcome") {
      this.ready = true;
      this.attempts = 0;
      this.on.state("online");
      this.on.frame(f);
      for (const frame of this.pendingReplies.values()) this.raw(frame);
      return;
    }
    if (f.type === "error" && f.code === "unauthorized" && !this.ready) {
      this.stopped = true;
      this.on.rejected(f.message);
      return;
    }
    if (f.type === "ack" && f.request === "reply" && f.client_id) this.pendingReplies.delete(f.client_id);
    if (f.type === "error" && f.request === "reply" && f.code !== "storage_error") {
      // Refused for good (not_owner, invalid_request...): resending would not help.
      this.pendingReplies.clear();
    }
    this.on.frame(f);
  }

  raw(frame) {
    if (this.ws && this.ready && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  /** Sends a request now; false when not connected (the caller says so to the agent). */
  send(frame) {
    return this.raw(frame);
  }

  /** A reply survives a reconnect: it is resent with its client_id until acknowledged. */
  reply(conversationId, text) {
    const clientId = "r-" + randomId();
    const frame = { type: "reply", conversation_id: conversationId, text, client_id: clientId };
    this.pendingReplies.set(clientId, frame);
    this.raw(frame);
    return clientId;
  }
}
