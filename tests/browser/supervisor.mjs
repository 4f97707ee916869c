// A supervisor in the inbox: signs in, sees their team waiting with its SLA deadline, gets
// the breach alert when the deadline passes (the daemon's clock is moved through its debug
// API), assigns the waiting conversation to an agent who is away, opens it from the agent's
// line and transfers it to another team.
//
// Run by tests/e2e/browser.rs, which starts the daemon (with debug.clock_control and an SLA
// policy for team support), escalates one customer, and passes:
//   HANDOFFD_URL, API_KEY, SUPERVISOR_TOKEN (sam, supervisor of support), CONVERSATION_ID,
//   SCREENSHOT_DIR.
// Exits 0 when every assertion held; prints each step.
import assert from "node:assert/strict";
import path from "node:path";
import { chromium } from "playwright-core";
import { launchOptions, until } from "./support.mjs";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const daemon = new URL(env("HANDOFFD_URL"));
const apiKey = env("API_KEY");
const token = env("SUPERVISOR_TOKEN");
const cid = env("CONVERSATION_ID");
const shots = env("SCREENSHOT_DIR");

const started = Date.now();
const step = (name) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${name}`);

async function api(method, route, body) {
  const r = await fetch(new URL(route, daemon), {
    method,
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, body: await r.json() };
}

async function owner() {
  const { body } = await api("GET", `/api/v1/conversations/${cid}`);
  return body.conversation.owner;
}

const browser = await chromium.launch(launchOptions());
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));

  step("the supervisor signs in");
  await page.goto(new URL("/inbox", daemon).href);
  await page.locator("#token").fill(token);
  await page.locator("#signin-form button[type=submit]").click();
  await until("the supervisor badge", async () => (await page.locator("#me").textContent()).includes("(supervisor)"));
  await until("the overview", () => page.locator("#overview").isVisible());
  // Sam watches rather than takes conversations: away, so nothing is offered to him.
  await page.locator("#presence").uncheck();
  await until("away", async () => (await page.locator("#presence-label").textContent()) === "Away");
  await until("no offer left", async () => (await page.locator("#offers-count").textContent()) === "0");

  step("the team and the waiting customer with their SLA deadline");
  await until("support with one waiting", async () => {
    const t = await page.locator('#ov-teams li[data-team="support"]').textContent();
    return t.includes("1 waiting") && t.includes("open");
  });
  await until("the queue line with its deadline", async () => {
    const t = await page.locator(`#queue button[data-id="${cid}"]`).textContent();
    return t.includes("assignment due in");
  });
  await until("alice listed as away", async () => {
    const label = await page.locator('#ov-agents li[data-agent="alice"] .dot').getAttribute("aria-label");
    return label === "offline" || label === "away";
  });

  step("the deadline passes: an alert, and the line turns red");
  const moved = await api("POST", "/api/v1/debug/clock", { advance_secs: 61 });
  assert.equal(moved.status, 200);
  assert.equal(moved.body.breaches, 1);
  await until("the SLA alert", async () => (await page.locator("#ov-alerts").textContent()).includes("assignment missed"));
  assert.equal(await page.locator("#ov-alerts-count").textContent(), "1");
  await until("the breached queue line", async () =>
    (await page.locator(`#queue button[data-id="${cid}"]`).getAttribute("class")).includes("sla-breached"),
  );

  step("the supervisor assigns it to alice, who is not even connected");
  await page.locator(`#queue button[data-id="${cid}"]`).click();
  await until("the supervisor's controls", () => page.locator("#supervise-actions").isVisible());
  await page.locator("#assign-to").selectOption("alice");
  await page.locator("#assign").click();
  await until("alice holds it", async () => {
    const o = await owner();
    return o.state === "agent" && o.agent_id === "alice";
  });
  await until("alice's line shows it", async () =>
    (await page.locator('#ov-agents li[data-agent="alice"]').textContent()).includes("1 of 2"),
  );
  await until("the view says who holds it", async () => (await page.locator("#conv-meta").textContent()).includes("held by alice"));
  assert.equal(await page.locator("#assign-row").isVisible(), false, "a held conversation is not assigned again");
  assert.equal(await page.locator("#claim").isVisible(), false, "nor taken from the queue");
  await page.screenshot({ path: path.join(shots, "inbox-supervisor-desktop.png") });

  step("the supervisor opens it from alice's line and transfers it to billing");
  await page.locator(`#ov-agents button[data-id="${cid}"]`).click();
  await page.locator("#move-kind").selectOption("team");
  await page.locator("#move-to").fill("billing");
  await page.locator("#move").click();
  await until("it waits for billing", async () => {
    const o = await owner();
    return o.state === "queued" && o.team === "billing";
  });
  const { body } = await api("GET", `/api/v1/conversations/${cid}`);
  assert.ok(
    body.transcript.some((m) => m.role === "note" && m.text.startsWith("Transferred by sam (supervisor) to team billing")),
    JSON.stringify(body.transcript),
  );
  await until("alice is free again", async () =>
    (await page.locator('#ov-agents li[data-agent="alice"]').textContent()).includes("0 of 2"),
  );
  assert.deepEqual(errors, []);
  console.log("browser test passed");
} finally {
  await browser.close();
}
