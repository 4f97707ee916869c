// The widget's websocket client (docs/widget-protocol.md): hello with token and last_seq,
// replay, acks, resend of unacknowledged messages with their client_id, reconnect with
// backoff. It knows nothing about the DOM; it reports through callbacks.

const MAX_BACKOFF_MS = 10000;

/** A random client_id; getRandomValues works on plain-http pages too, unlike UUIDs. */
function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** One visitor's connection to the daemon, reconnecting until stopped. */
export class WidgetClient {
  constructor({ server, store, name, language, on }) {
    this.url = server.replace(/^http/, "ws") + "/widget/ws";
    this.store = store;
    this.name = name;
    this.language = language;
    this.on = on; // { message, status, typing, connection, changed }
    this.ws = null;
    this.attempts = 0;
    this.greeted = false;
    this.stopped = false;
  }

  start() {
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    this.on.connection("connecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.greeted = false;
    ws.onopen = () => {
      const hello = { type: "hello" };
      if (this.name) hello.name = this.name;
      if (this.language) hello.language = this.language;
      if (this.store.token) {
        hello.token = this.store.token;
        hello.last_seq = this.store.lastSeq;
      }
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (e) => {
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch {
        return;
      }
      this.onFrame(frame);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.greeted = false;
      this.on.connection("offline");
      this.on.typing(false);
      const delay = Math.min(MAX_BACKOFF_MS, 300 * 2 ** this.attempts++);
      setTimeout(() => this.connect(), delay);
    };
  }

  send(frame) {
    if (this.ws && this.greeted && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  /** Queues a message; it goes now if connected, otherwise after the next welcome. */
  say(text) {
    const clientId = randomId();
    this.store.addPending(clientId, text);
    this.on.changed();
    this.send({ type: "message", text, client_id: clientId });
  }

  typing(active) {
    this.send({ type: "typing", active });
  }

  onFrame(f) {
    switch (f.type) {
      case "welcome":
        this.greeted = true;
        this.attempts = 0;
        this.store.setToken(f.token);
        this.on.connection("online");
        this.on.status(f.status || { state: "bot" });
        // Whatever was never acknowledged goes again with its client_id: stored once.
        for (const p of this.store.pending) {
          this.send({ type: "message", text: p.text, client_id: p.client_id });
        }
        break;
      case "message": {
        const m = {
          seq: f.seq,
          role: f.role,
          text: f.text,
          author_name: f.author_name,
          sent_at_ms: f.sent_at_ms,
          client_id: f.client_id,
          quick_replies: Array.isArray(f.quick_replies) ? f.quick_replies : [],
        };
        const added = this.store.remember(m);
        this.store.advance(f.seq);
        if (added) this.on.message(m);
        if (f.role === "agent" || f.role === "bot") this.on.typing(false);
        this.on.changed();
        break;
      }
      case "ack": {
        const text = this.store.textOfPending(f.client_id);
        if (text !== undefined) {
          this.store.remember({ seq: f.seq, role: "customer", text, client_id: f.client_id, sent_at_ms: Date.now() });
        }
        this.on.changed();
        break;
      }
      case "status":
        this.on.status(f);
        break;
      case "typing":
        this.on.typing(Boolean(f.active));
        break;
      case "error":
        if (f.code === "invalid_token") {
          this.store.forget();
          this.on.changed();
        } else if (f.code === "not_stored" || f.code === "unavailable") {
          if (this.ws) this.ws.close(); // reconnect; pending messages are resent
        } else {
          console.warn("handoffd widget:", f.code, f.message);
        }
        break;
      default:
        break;
    }
  }
}
