// The whole handoff in a real browser: a visitor on a customer's site talks to the bot
// through the widget and asks for a person; an agent in the inbox (a second browser
// context) gets the offer with the transcript and the reasons, accepts and replies; both
// pages are reloaded and lose their network; the agent transfers to another team, whose
// agent accepts and closes; the bot answers again.
//
// Run by tests/e2e/browser.rs, which starts the daemon and passes:
//   HANDOFFD_URL (http://127.0.0.1:port), HOST_PORT (the customer site's port, listed in
//   widget.allowed_origins), AGENT_TOKEN (alice, team support), BOB_TOKEN (bob, team
//   billing), SCREENSHOT_DIR.
// Exits 0 when every assertion held; prints each step.
import assert from "node:assert/strict";
import path from "node:path";
import { chromium } from "playwright-core";
import { DropProxy, counts, hostSite, launchOptions, until } from "./support.mjs";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const daemon = new URL(env("HANDOFFD_URL"));
const hostPort = Number(env("HOST_PORT"));
const agentToken = env("AGENT_TOKEN");
const bobToken = env("BOB_TOKEN");
const shots = env("SCREENSHOT_DIR");
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

const started = Date.now();
const step = (name) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${name}`);

// Widget selectors (Playwright's CSS pierces the widget's open shadow root).
const W = {
  launcher: ".hd-launcher",
  input: ".hd-input",
  status: ".hd-status",
  banner: ".hd-banner",
  typing: ".hd-typing",
  texts: ".hd-log li:not(.hd-greeting):not(.hd-pending) .hd-text",
};

async function widgetMessages(page) {
  return page.$$eval(".hd-log li:not(.hd-greeting)", (items) =>
    items.map((li) => ({ role: li.className.replace(/hd-msg|hd-pending/g, "").trim(), text: li.querySelector(".hd-text").textContent, pending: li.classList.contains("hd-pending") })),
  );
}

async function inboxEntries(page) {
  return page.$$eval("#transcript li.entry:not(.pending)", (items) =>
    items.map((li) => ({ role: [...li.classList].find((c) => c.startsWith("role-")).slice(5), text: li.querySelector(".text").textContent, seq: Number(li.dataset.seq) })),
  );
}

async function say(page, text) {
  await page.locator(W.input).fill(text);
  await page.locator(W.input).press("Enter");
}

async function widgetHas(page, role, text, times = 1) {
  return until(`widget: ${role} "${text}" x${times}`, async () => {
    const ms = await widgetMessages(page);
    return ms.filter((m) => m.role === `hd-${role}` && m.text === text && !m.pending).length === times;
  });
}

async function inboxHas(page, role, text) {
  return until(`inbox: ${role} "${text}"`, async () => {
    const es = await inboxEntries(page);
    return es.filter((e) => e.role === role && e.text === text).length === 1;
  });
}

function assertNoDuplicates(list, where) {
  for (const [text, n] of counts(list)) assert.equal(n, 1, `${where}: "${text}" shown ${n} times`);
}

async function main() {
  const visitorNet = new DropProxy({ host: daemon.hostname, port: Number(daemon.port) });
  const agentNet = new DropProxy({ host: daemon.hostname, port: Number(daemon.port) });
  const widgetBase = await visitorNet.listen();
  const inboxBase = await agentNet.listen();
  const shop = await hostSite(hostPort, widgetBase);
  const shopUrl = `http://127.0.0.1:${hostPort}/`;

  const browser = await chromium.launch(launchOptions());
  try {
    const visitorCtx = await browser.newContext({ viewport: DESKTOP });
    const agentCtx = await browser.newContext({ viewport: DESKTOP });
    await agentCtx.grantPermissions(["notifications"], { origin: inboxBase });
    // Desktop notifications are recorded so the test can see them.
    await agentCtx.addInitScript(() => {
      window.__notifications = [];
      const Real = window.Notification;
      class Recorded {
        constructor(title, options) {
          window.__notifications.push({ title, body: options && options.body });
          try {
            return new Real(title, options);
          } catch {
            return this;
          }
        }
        static get permission() {
          return "granted";
        }
        static requestPermission() {
          return Promise.resolve("granted");
        }
      }
      window.Notification = Recorded;
    });
    const visitor = await visitorCtx.newPage();
    const agent = await agentCtx.newPage();
    const errors = [];
    for (const [who, page] of [["visitor", visitor], ["agent", agent]]) {
      page.on("pageerror", (e) => errors.push(`${who}: ${e.message}`));
      page.on("console", (m) => {
        if (m.type() === "error" && !/WebSocket|ERR_CONNECTION|Failed to load resource/.test(m.text())) errors.push(`${who} console: ${m.text()}`);
      });
    }

    step("agent signs in to the inbox; the page has a strict CSP");
    const inboxResponse = await agent.goto(`${inboxBase}/inbox`);
    const csp = inboxResponse.headers()["content-security-policy"] || "";
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline/);
    await agent.locator("#token").fill(agentToken);
    await agent.locator("#signin-form button[type=submit]").click();
    await until("agent welcome", async () => (await agent.locator("#me").textContent()).includes("alice"));
    assert.equal(await agent.locator("#presence").isChecked(), true);

    step("visitor opens the shop, the widget greets them, the bot answers");
    await visitor.goto(shopUrl);
    await visitor.locator(W.launcher).click();
    await until("greeting", async () => (await visitor.locator(".hd-greeting .hd-text").textContent()) === "Hi! Ask us anything.");
    assert.equal(await visitor.locator(W.launcher).getAttribute("aria-expanded"), "true");
    await say(visitor, "what are your opening hours?");
    await widgetHas(visitor, "bot", "We are open 9 to 5.");
    await widgetHas(visitor, "customer", "what are your opening hours?");
    assert.equal(await visitor.locator(W.status).textContent(), "Assistant");
    // The FAQ entry offers a quick reply: a button under the answer.
    await until("quick reply shown", async () => (await visitor.locator(".hd-quick-reply").count()) === 1);
    assert.equal(await visitor.locator(".hd-quick-reply").textContent(), "Are you open on Sundays?");
    assert.equal(await visitor.locator(".hd-quick").getAttribute("role"), "group");
    await visitor.screenshot({ path: path.join(shots, "widget-desktop.png") });

    step("agent goes away; visitor asks for a person: 'connecting you' state");
    await agent.locator("#presence").uncheck();
    await until("agent away", async () => (await agent.locator("#presence-label").textContent()) === "Away");
    await say(visitor, "I want to talk to a human please");
    await until("quick reply gone once answered", async () => (await visitor.locator(".hd-quick-reply").count()) === 0);
    await until("warm handoff notice", async () => (await widgetMessages(visitor)).some((m) => m.role === "hd-system" && m.text.includes("person")));
    await until("queue position", async () => (await visitor.locator(W.status).textContent()) === "Connecting you with a person… You are number 1 in the queue.");
    assert.equal(await visitor.locator(".hd-wrap").getAttribute("data-state"), "queued");
    await visitor.screenshot({ path: path.join(shots, "widget-queued-desktop.png") });

    step("the inbox's queue lists the waiting visitor; opening it is read-only");
    await until("queue entry", async () => (await agent.locator("#queue li").count()) === 1);
    assert.match(await agent.locator("#queue li .who").textContent(), /Ada/);
    assert.match(await agent.locator("#queue li .detail").textContent(), /^#1 support · waiting \d+ s$/);
    assert.equal(await agent.locator("#queue li .channel").getAttribute("aria-label"), "Website chat");
    assert.equal(await agent.locator("#offers li").count(), 0);
    await agent.locator("#queue li button").click();
    await inboxHas(agent, "customer", "I want to talk to a human please");
    assert.equal(await agent.locator("#conv-meta").textContent(), "waiting in the queue · team support");
    assert.ok(await agent.locator("#composer").isHidden());
    assert.ok(await agent.locator("#offer-actions").isHidden());
    await agent.locator("#presence").check();

    step("agent gets the offer: sound/notification, transcript, reasons");
    await until("an offer in the list", async () => (await agent.locator("#offers li").count()) === 1);
    assert.match(await agent.locator("#offers li .who").textContent(), /Ada/);
    await until("alert counted", async () => Number(await agent.evaluate(() => document.body.dataset.alerts || 0)) >= 1);
    const notes = await agent.evaluate(() => window.__notifications);
    assert.ok(notes.some((n) => n.title.includes("Ada")), JSON.stringify(notes));
    await until("offer opened", async () => !(await agent.locator("#offer-actions").isHidden()));
    const offered = await inboxEntries(agent);
    assert.deepEqual(
      offered.filter((e) => e.role !== "system").map((e) => [e.role, e.text]),
      [
        ["customer", "what are your opening hours?"],
        ["bot", "We are open 9 to 5."],
        ["customer", "I want to talk to a human please"],
      ],
    );
    assert.match(await agent.locator(".trigger strong").first().textContent(), /explicit request/);
    assert.match(await agent.locator(".trigger .evidence").first().textContent(), /human/);
    assert.match(await agent.locator(".summary").textContent(), /opening hours/);
    assert.equal(await agent.locator(".sparkline circle").count(), 2);
    assert.equal(await agent.locator(".facts .language").textContent(), "en");
    await agent.screenshot({ path: path.join(shots, "inbox-offer-desktop.png") });

    step("agent accepts; visitor sees the agent's name");
    await agent.locator("#accept").click();
    await until("conversation is mine", async () => (await agent.locator("#mine li").count()) === 1);
    await until("composer shown", async () => !(await agent.locator("#composer").isHidden()));
    await until("visitor status names alice", async () => (await visitor.locator(W.status).textContent()) === "You are chatting with alice");

    step("live updates keep nodes: focus stays on a list line, old messages are not redrawn");
    await agent.locator("#mine li button").focus();
    const firstMessage = await visitor.locator(".hd-log li.hd-customer").first().elementHandle();
    await agent.waitForTimeout(1500); // more than one tick of the inbox's 1 s clock
    assert.equal(await agent.evaluate(() => document.activeElement.closest("#mine") !== null), true, "focus left the list");

    step("typing indicators both ways");
    await visitor.locator(W.input).fill("typing something");
    await until("agent sees customer typing", async () => !(await agent.locator("#typing").isHidden()));
    await visitor.locator(W.input).fill("");
    await visitor.locator(W.input).dispatchEvent("input");
    await agent.locator("#text").fill("Hi Ada");
    await agent.locator("#text").dispatchEvent("input");
    await until("visitor sees agent typing", async () => !(await visitor.locator(W.typing).isHidden()));

    step("agent replies and leaves an internal note");
    await agent.locator("#text").fill("Hi Ada, I'm Alice. How can I help?");
    await agent.locator("#text").press("Enter");
    await widgetHas(visitor, "agent", "Hi Ada, I'm Alice. How can I help?");
    await inboxHas(agent, "agent", "Hi Ada, I'm Alice. How can I help?");
    assert.equal(await firstMessage.evaluate((n) => n.isConnected), true, "the widget redrew old messages");
    await until("visitor typing indicator cleared", async () => visitor.locator(W.typing).isHidden());
    await agent.locator('input[name="mode"][value="note"]').check();
    await agent.locator("#text").fill("VIP customer, second late order");
    await agent.locator("#send").click();
    await inboxHas(agent, "note", "VIP customer, second late order");
    await agent.locator('input[name="mode"][value="reply"]').check();
    await say(visitor, "my order 12345678 is late");
    await inboxHas(agent, "customer", "my order 12345678 is late");
    await widgetHas(visitor, "customer", "my order 12345678 is late");
    await agent.screenshot({ path: path.join(shots, "inbox-desktop.png") });
    await visitor.screenshot({ path: path.join(shots, "widget-agent-desktop.png") });

    step("both pages reload: history restored, nothing doubled");
    const visitorBefore = (await widgetMessages(visitor)).map((m) => m.text);
    const agentBefore = (await inboxEntries(agent)).map((e) => e.text);
    await visitor.reload();
    await visitor.locator(W.launcher).click();
    await until("visitor history restored", async () => (await widgetMessages(visitor)).length === visitorBefore.length);
    await until("visitor reconnected as alice's", async () => (await visitor.locator(W.status).textContent()) === "You are chatting with alice");
    assert.deepEqual((await widgetMessages(visitor)).map((m) => m.text), visitorBefore);
    await agent.reload();
    await until("agent signed in again", async () => (await agent.locator("#mine li").count()) === 1);
    await agent.locator("#mine li button").click();
    await until("agent transcript restored", async () => (await inboxEntries(agent)).length === agentBefore.length);
    assert.deepEqual((await inboxEntries(agent)).map((e) => e.text), agentBefore);
    await until("entities from the journal", async () => (await agent.locator(".entities").textContent()).includes("12345678"));

    step("the visitor's network drops: nothing lost, nothing doubled");
    visitorNet.drop();
    await until("widget shows the drop", async () => !(await visitor.locator(W.banner).isHidden()));
    await say(visitor, "sent while offline");
    await agent.locator("#text").fill("reply while you were away");
    await agent.locator("#text").press("Enter");
    await inboxHas(agent, "agent", "reply while you were away");
    await new Promise((r) => setTimeout(r, 500));
    visitorNet.restore();
    await widgetHas(visitor, "agent", "reply while you were away");
    await widgetHas(visitor, "customer", "sent while offline");
    await inboxHas(agent, "customer", "sent while offline");
    await until("widget back online", async () => visitor.locator(W.banner).isHidden());

    step("the agent's network drops: the reply written offline goes once");
    agentNet.drop();
    await until("inbox shows the drop", async () => (await agent.locator("#link").textContent()).includes("Connection lost"));
    await agent.locator("#text").fill("queued reply from the inbox");
    await agent.locator("#text").press("Enter");
    await say(visitor, "are you still there?");
    await widgetHas(visitor, "customer", "are you still there?");
    await new Promise((r) => setTimeout(r, 500));
    agentNet.restore();
    await inboxHas(agent, "customer", "are you still there?");
    await inboxHas(agent, "agent", "queued reply from the inbox");
    await widgetHas(visitor, "agent", "queued reply from the inbox");
    assertNoDuplicates((await inboxEntries(agent)).map((e) => `${e.seq}:${e.text}`), "inbox");
    assert.deepEqual(
      (await inboxEntries(agent)).map((e) => e.seq),
      [...(await inboxEntries(agent)).map((e) => e.seq)].sort((a, b) => a - b),
      "inbox transcript out of order",
    );

    step("screenshots at phone size");
    await visitor.setViewportSize(PHONE);
    await agent.setViewportSize(PHONE);
    await visitor.screenshot({ path: path.join(shots, "widget-phone.png") });
    await agent.screenshot({ path: path.join(shots, "inbox-phone.png") });
    assert.ok((await visitor.locator(".hd-panel").boundingBox()).width >= PHONE.width - 1, "widget panel is not full width on a phone");
    await visitor.setViewportSize(DESKTOP);
    await agent.setViewportSize(DESKTOP);

    step("alice transfers to team billing; bob gets it with the transfer note");
    const bobCtx = await browser.newContext({ viewport: DESKTOP });
    const bob = await bobCtx.newPage();
    bob.on("pageerror", (e) => errors.push(`bob: ${e.message}`));
    await bob.goto(`${inboxBase}/inbox`);
    await bob.locator("#token").fill(bobToken);
    await bob.locator("#token").press("Enter");
    await until("bob welcome", async () => (await bob.locator("#me").textContent()).includes("bob"));
    await agent.locator("#transfer-kind").selectOption("team");
    await agent.locator("#transfer-to").fill("billing");
    await agent.locator("#transfer").click();
    await until("released from alice", async () => (await agent.locator("#mine li").count()) === 0);
    await until("bob's offer", async () => (await bob.locator("#offers li").count()) === 1);
    await until("bob sees the offer", async () => !(await bob.locator("#offer-actions").isHidden()));
    assert.equal(await bob.locator("#conv-meta").textContent(), "offered to you · team billing");
    await inboxHas(bob, "note", "Transferred by alice to team billing");
    await inboxHas(bob, "note", "VIP customer, second late order");
    await bob.locator("#accept").click();
    await until("visitor status names bob", async () => (await visitor.locator(W.status).textContent()) === "You are chatting with bob");

    step("bob closes; the bot answers the visitor again");
    await bob.locator("#close").click();
    await until("conversation released", async () => (await bob.locator("#mine li").count()) === 0);
    await until("visitor back with the bot", async () => (await visitor.locator(W.status).textContent()) === "Assistant");
    await say(visitor, "how do I reset my password?");
    await widgetHas(visitor, "bot", "Use the Forgot password link on the sign-in page.");

    step("the visitor's whole transcript: in order, once each, no internal note");
    const finalTexts = (await widgetMessages(visitor)).map((m) => m.text);
    assertNoDuplicates(finalTexts, "widget");
    assert.ok(!finalTexts.some((t) => t.includes("VIP customer")), "an internal note reached the visitor");
    const order = [
      "what are your opening hours?",
      "We are open 9 to 5.",
      "I want to talk to a human please",
      "Hi Ada, I'm Alice. How can I help?",
      "my order 12345678 is late",
      "reply while you were away",
      "are you still there?",
      "how do I reset my password?",
      "Use the Forgot password link on the sign-in page.",
    ];
    const positions = order.map((t) => finalTexts.indexOf(t));
    assert.ok(positions.every((p) => p >= 0), `missing: ${order.filter((t, i) => positions[i] < 0)}`);
    assert.deepEqual(positions, [...positions].sort((a, b) => a - b), `out of order: ${finalTexts.join(" | ")}`);

    step("keyboard: Escape closes the panel and focus returns to the launcher; Enter opens it");
    await visitor.locator(W.input).press("Escape");
    await until("panel closed", async () => visitor.locator(".hd-panel").isHidden());
    assert.equal(await visitor.locator(W.launcher).getAttribute("aria-expanded"), "false");
    assert.equal(await visitor.evaluate(() => document.querySelector("#handoffd-widget").shadowRoot.activeElement.className), "hd-launcher");
    await visitor.keyboard.press("Enter");
    await until("panel open again", async () => !(await visitor.locator(".hd-panel").isHidden()));
    assert.equal(await visitor.evaluate(() => document.querySelector("#handoffd-widget").shadowRoot.activeElement.id), "hd-input");

    step("a second handoff: the agent declines the offer, it goes back to the queue");
    await say(visitor, "can I talk to a person please");
    await until("second offer", async () => (await agent.locator("#offers li").count()) === 1);
    await until("offer selected", async () => !(await agent.locator("#offer-actions").isHidden()));
    assert.equal(await agent.locator("#conv-meta").textContent(), "offered to you · team support");
    await agent.locator("#decline").click();
    await until("offer withdrawn", async () => (await agent.locator("#offers li").count()) === 0);
    await until("waiting in the queue, not offered to alice", async () => {
      const items = await agent.locator("#queue li").count();
      return items === 1 && !(await agent.locator("#queue li").textContent()).includes("offered to you");
    });
    assert.match(await visitor.locator(W.status).textContent(), /^Connecting you with a person/);

    step("alice takes it from the queue anyway (claim): the visitor gets her again");
    await agent.locator("#queue li button").click();
    await until("queued view", async () => !(await agent.locator("#queued-actions").isHidden()));
    await inboxHas(agent, "customer", "can I talk to a person please");
    await agent.locator("#claim").click();
    await until("claimed", async () => (await agent.locator("#mine li").count()) === 1);
    await until("composer for the claimed one", async () => !(await agent.locator("#composer").isHidden()));
    await until("visitor status names alice again", async () => (await visitor.locator(W.status).textContent()) === "You are chatting with alice");
    assert.equal(await agent.locator("#queue li").count(), 0);

    step("options: a French page gets French words on the left; another origin gets no widget");
    const otherCtx = await browser.newContext({ viewport: DESKTOP });
    const french = await otherCtx.newPage();
    await french.goto(`${shopUrl}fr`);
    await until("french launcher", async () => (await french.locator(W.launcher).getAttribute("aria-label")) === "Ouvrir le chat");
    await french.locator(W.launcher).click();
    assert.equal(await french.locator(W.input).getAttribute("placeholder"), "Écrivez un message…");
    assert.equal(await french.locator(".hd-wrap").getAttribute("class"), "hd-wrap hd-left hd-open");
    assert.equal(await french.locator(".hd-greeting").count(), 0);
    const stranger = await otherCtx.newPage();
    const refused = new Promise((resolve) => {
      stranger.on("console", (m) => m.text().includes("handoffd widget could not load") && resolve(true));
    });
    // localhost is another origin than the allowed http://127.0.0.1:<port>: CORS refuses the modules.
    await stranger.goto(`http://localhost:${hostPort}/`);
    await until("the widget refused to load", () => Promise.race([refused, new Promise((r) => setTimeout(() => r(false), 200))]));
    assert.equal(await stranger.locator("#handoffd-widget").count(), 0);
    await otherCtx.close();
    assert.deepEqual(errors, [], "errors in the pages");
    console.log(`browser test passed in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  } finally {
    await browser.close();
    shop.close();
    visitorNet.close();
    agentNet.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e && e.stack ? e.stack : e);
    process.exit(1);
  },
);
