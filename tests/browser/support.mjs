// Helpers of the browser tests: loopback servers (the customer's site, a TCP proxy that can
// drop the network), bounded polling, and the chromium launch options this machine needs.
import http from "node:http";
import net from "node:net";

/** Fails with `what` unless `check` returns something truthy within `ms`. */
export async function until(what, check, ms = 10000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Chromium from Debian, headless, nothing reaching outside. */
export function launchOptions() {
  return {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  };
}

/** A page of the customer's site embedding the widget with one tag and these options. */
function shopPage(widgetBase, attrs) {
  const data = Object.entries(attrs)
    .map(([k, v]) => `data-${k}="${v}"`)
    .join(" ");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Example Shop</title></head>
<body>
<h1>Example Shop</h1>
<p>Good things, delivered. Questions? Use the chat button.</p>
<script src="${widgetBase}/widget.js" ${data} async></script>
</body></html>`;
}

/** A customer's website on its own loopback origin: `/` in English, `/fr` in French. */
export function hostSite(port, widgetBase) {
  const pages = {
    "/": shopPage(widgetBase, { name: "Ada", color: "#6a1b9a", title: "Example Shop support", greeting: "Hi! Ask us anything.", language: "en" }),
    "/fr": shopPage(widgetBase, { language: "fr-FR", position: "left", greeting: "" }),
  };
  const server = http.createServer((req, res) => {
    const page = pages[req.url];
    res.writeHead(page ? 200 : 404, { "content-type": "text/html; charset=utf-8" });
    res.end(page || "not found");
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

/** A TCP proxy to the daemon whose connections can be cut, to simulate a network drop. */
export class DropProxy {
  constructor(target) {
    this.target = target; // { host, port }
    this.blocked = false;
    this.sockets = new Set();
    this.server = net.createServer((client) => {
      if (this.blocked) {
        client.destroy();
        return;
      }
      const upstream = net.connect(this.target.port, this.target.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => s.destroy());
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
  }

  listen() {
    return new Promise((resolve) => {
      this.server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${this.server.address().port}`));
    });
  }

  /** Cuts every open connection and refuses new ones until restore(). */
  drop() {
    this.blocked = true;
    for (const s of this.sockets) s.destroy();
  }

  restore() {
    this.blocked = false;
  }

  close() {
    this.drop();
    this.server.close();
  }
}

/** Counts how many times each string appears. */
export function counts(list) {
  const m = new Map();
  for (const x of list) m.set(x, (m.get(x) || 0) + 1);
  return m;
}
