// `qnet ui` with a real browser (Debian's Chromium through playwright-core) on the two-VM private lab:
// topology, live state, check, serial console, a killed VM, token refusal and a clean stop on SIGINT.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { Page } from "playwright-core";
import WebSocket from "ws";
import { REPO_ROOT } from "../helpers/golden.js";
import {
  type Browser,
  launchBrowser,
  screenshotPath,
  startUi,
  type UiProcess,
} from "./helpers/browser.js";
import { addNetns, delNetns, qnetEnv, sh } from "./helpers/netns.js";
import { qnetAsync } from "./helpers/underlay.js";

const example = (name: string) => join(REPO_ROOT, "examples", `${name}.yaml`);

/** HTTP status of a WebSocket handshake (101 when it was accepted). */
function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once("open", () => {
      ws.close();
      resolve(101);
    });
    ws.once("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once("error", (e) => reject(e));
  });
}

/** Text lines sent to a serial socket come back in its output (the console is free for others). */
async function serialAnswers(path: string, command: string, expect: string): Promise<boolean> {
  const s = connect(path);
  let out = "";
  s.on("data", (d) => {
    out += d;
  });
  await new Promise((resolve, reject) => {
    s.once("connect", resolve);
    s.once("error", reject);
  });
  s.write(`\n${command}\n`);
  for (let i = 0; i < 50 && !out.includes(expect); i++) await sleep(100);
  s.destroy();
  return out.includes(expect);
}

interface GraphFacts {
  width: number;
  height: number;
  nodes: {
    id: string;
    kind: string;
    name: string;
    state: string;
    box: { x1: number; y1: number; x2: number; y2: number };
  }[];
}

const graphFacts = (page: Page) =>
  page.evaluate((): GraphFacts => {
    // biome-ignore lint/suspicious/noExplicitAny: the page's cytoscape instance, untyped here
    const cy = (window as any).qnetGraph;
    const r = document.getElementById("graph")!.getBoundingClientRect();
    return {
      width: r.width,
      height: r.height,
      // biome-ignore lint/suspicious/noExplicitAny: cytoscape node
      nodes: cy.nodes().map((n: any) => ({
        id: n.id(),
        kind: n.data("kind"),
        name: n.data("name"),
        state: n.data("state"),
        box: n.renderedBoundingBox(),
      })),
    };
  });

describe("qnet ui: private-lan in a real browser", () => {
  const ns = `qnt-ui-${process.pid}`;
  const env = qnetEnv();
  let ui: UiProcess;
  let browser: Browser;
  let page: Page;

  before(async () => {
    addNetns(ns);
    const r = env.qnet(["up", example("private-lan"), "--netns", ns, "-q"]);
    assert.equal(r.status, 0, `up failed:\n${r.stderr}`);
    ui = await startUi(["lab", "--state-dir", env.stateRoot]);
    browser = await launchBrowser();
    page = await browser.context.newPage();
  });
  after(async () => {
    await browser?.close();
    if (ui && ui.child.exitCode === null && ui.child.signalCode === null) ui.child.kill("SIGKILL");
    env.qnet(["down", "lab"]);
    delNetns(ns);
    env.cleanup();
  });

  test("prints a loopback URL with a token first; requests without it are refused", async () => {
    assert.match(ui.url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{32}$/);
    for (const path of ["/", "/api/labs", "/api/labs/lab/topology", "/assets/app.js"]) {
      const r = await fetch(`${ui.origin}${path}`);
      assert.equal(r.status, 401, path);
      const wrong = await fetch(`${ui.origin}${path}?token=${ui.token.slice(0, -1)}x`);
      assert.equal(wrong.status, 401, `${path} with a wrong token`);
    }
    const ok = await fetch(ui.url);
    assert.equal(ok.status, 200);
    assert.match(ok.headers.get("content-security-policy") ?? "", /script-src 'self'/);
    const post = await fetch(`${ui.origin}/api/labs/lab/check`, { method: "POST" });
    assert.equal(post.status, 401, "check without the token");
    const wsUrl = `${ui.origin.replace("http", "ws")}/ws/labs/lab/consoles/vm0`;
    assert.equal(await upgradeStatus(wsUrl), 401, "console WebSocket without the token");
    assert.equal(
      await upgradeStatus(`${wsUrl}?token=${ui.token}`, { origin: "http://evil.example" }),
      403,
      "a WebSocket opened by another site's page",
    );
  });

  test("the page draws both VMs and the network, with their live state, and lists the labs", async () => {
    await page.goto(ui.url);
    await page.waitForSelector("body[data-drawn]", { timeout: 20_000 });
    await page.waitForSelector('tr[data-key="vm:vm1"][data-state="present"]', { timeout: 15_000 });
    await page.waitForFunction(
      // biome-ignore lint/suspicious/noExplicitAny: cytoscape
      () => (window as any).qnetGraph.getElementById("vm:vm1").data("state") === "present",
      null,
      { timeout: 5_000 },
    );
    await page.screenshot({ path: screenshotPath("1-topology") });
    const g = await graphFacts(page);
    const names = (kind: string) =>
      g.nodes
        .filter((n) => n.kind === kind)
        .map((n) => n.name)
        .sort();
    assert.deepEqual(names("vm"), ["vm0", "vm1"]);
    assert.deepEqual(names("network"), ["lan"]);
    assert.deepEqual(names("nic"), ["0", "0"]);
    for (const n of g.nodes) {
      // Every node is drawn inside the graph's pane.
      assert.ok(n.box.x1 >= 0 && n.box.y1 >= 0, `${n.id} ${JSON.stringify(n.box)}`);
      assert.ok(n.box.x2 <= g.width && n.box.y2 <= g.height, `${n.id} ${JSON.stringify(n.box)}`);
      assert.ok(n.box.x2 - n.box.x1 > 10, `${n.id} has a size`);
    }
    for (const vm of ["vm0", "vm1"])
      assert.equal(g.nodes.find((n) => n.id === `vm:${vm}`)?.state, "present");
    assert.equal(await page.locator("#health").textContent(), "healthy");
    const labels = await page.evaluate(() =>
      // biome-ignore lint/suspicious/noExplicitAny: cytoscape
      (window as any).qnetGraph.nodes('[kind="nic"]').map((n: any) => n.data("label")),
    );
    assert.deepEqual(labels.sort(), [
      "10.0.2.2/24\n52:54:00:12:34:56",
      "10.0.2.3/24\n52:54:00:12:34:57",
    ]);
    // Without a lab in the URL: the list of labs.
    await page.goto(`${ui.url}#/`);
    await page.waitForSelector('#labs tr[data-lab="lab"]', { timeout: 5_000 });
    assert.match(
      (await page.locator('#labs tr[data-lab="lab"]').textContent()) ?? "",
      new RegExp(ns),
    );
    await page.click('#labs a[href="#/lab/lab"]');
    await page.waitForSelector("body[data-drawn]", { timeout: 20_000 });
  });

  test("Check draws the matrix: 6 pairs, all passing", async () => {
    await page.click("#check-button");
    await page.waitForSelector('#check-summary[data-state="done"]', { timeout: 60_000 });
    assert.equal(await page.locator('#check-matrix [data-pair-status="pass"]').count(), 6);
    assert.equal(await page.locator("#check-matrix [data-pair-status]").count(), 6);
    assert.match(
      (await page.locator("#check-summary").textContent()) ?? "",
      /6 pairs: 6 pass, 0 fail/,
    );
    const ids = await page
      .locator("#check-matrix [data-pair-id]")
      .evaluateAll((es) => es.map((e) => e.getAttribute("data-pair-id")).sort());
    assert.deepEqual(ids, [
      "host>vm0@lan",
      "host>vm1@lan",
      "vm0>gateway@lan",
      "vm0>vm1@lan",
      "vm1>gateway@lan",
      "vm1>vm0@lan",
    ]);
    await page.screenshot({ path: screenshotPath("2-check") });
  });

  test("a command typed into vm0's console prints its output; a second viewer only watches", async () => {
    await page.click(".tabs button[data-tab=objects]");
    await page.click('button[data-console="vm0"]');
    await page.waitForSelector('[data-console-vm="vm0"][data-writer="yes"]', { timeout: 10_000 });
    await page.locator('[data-console-vm="vm0"] .xterm').click();
    await page.keyboard.type("echo ui-$((6*7))\n");
    await page.waitForFunction(
      () =>
        document
          .querySelector('[data-console-vm="vm0"] .xterm-rows')
          ?.textContent?.includes("ui-42"),
      null,
      { timeout: 10_000 },
    );
    // The README's picture: graph, the check's matrix and the console together.
    await page.click(".tabs button[data-tab=check]");
    await page.screenshot({ path: screenshotPath("3-console") });
    await page.click(".tabs button[data-tab=objects]");

    const second = await browser.context.newPage();
    try {
      await second.goto(ui.url);
      await second.waitForSelector('button[data-console="vm0"]', { timeout: 15_000 });
      await second.click('button[data-console="vm0"]');
      await second.waitForSelector('[data-console-vm="vm0"][data-writer="no"]', {
        timeout: 10_000,
      });
      assert.match((await second.locator("#console-status").textContent()) ?? "", /read-only/);
      // It sees what the writer types...
      await page.locator('[data-console-vm="vm0"] .xterm').click();
      await page.keyboard.type("echo shared-$((7*6))\n");
      await second.waitForFunction(
        () =>
          document
            .querySelector('[data-console-vm="vm0"] .xterm-rows')
            ?.textContent?.includes("shared-42"),
        null,
        { timeout: 10_000 },
      );
      // ...but its own keys do not reach the VM.
      await second.locator('[data-console-vm="vm0"] .xterm').click();
      await second.keyboard.type("echo intruder-$((5*5))\n");
      await second.waitForFunction(
        () => document.getElementById("console-status")?.textContent?.includes("were not sent"),
        null,
        { timeout: 5_000 },
      );
      await sleep(500);
      const text = await page.locator('[data-console-vm="vm0"] .xterm-rows').textContent();
      assert.doesNotMatch(text ?? "", /intruder-25/);
    } finally {
      await second.close();
    }
    // The writer left: the first page keeps the keyboard it already had.
    assert.equal(await page.locator('[data-console-vm="vm0"]').getAttribute("data-writer"), "yes");
  });

  test("a NIC's details offer a capture: the download is a pcap of vm0's pings that tcpdump reads", async () => {
    await page.evaluate(() => {
      // biome-ignore lint/suspicious/noExplicitAny: the page's cytoscape instance, untyped here
      (window as any).qnetGraph.$id("nic:vm1:0").emit("tap");
    });
    const link = page.locator("#tab-details a.capture");
    await link.waitFor({ timeout: 5_000 });
    const href = (await link.getAttribute("href")) ?? "";
    assert.match(href, /^\/api\/labs\/lab\/capture\?vm=vm1&nic=0&/);
    // vm0 pings vm1 while the page's link is followed (the cookie the page got is its credential).
    const pinger = qnetAsync(env.stateRoot, [
      "exec",
      "lab",
      "vm0",
      "--",
      "ping",
      "-c",
      "20",
      "-i",
      "0.2",
      "10.0.2.3",
    ]).done;
    try {
      const pcap = await page.evaluate(async (url) => {
        const r = await fetch(`${url.replace("count=100", "count=6")}`);
        return {
          status: r.status,
          type: r.headers.get("content-type"),
          bytes: Array.from(new Uint8Array(await r.arrayBuffer())),
        };
      }, href);
      assert.equal(pcap.status, 200);
      assert.equal(pcap.type, "application/vnd.tcpdump.pcap");
      const file = join(env.stateRoot, "ui-capture.pcap");
      writeFileSync(file, Buffer.from(pcap.bytes));
      const read = sh(["tcpdump", "-n", "-r", file]);
      const lines = read.trim().split("\n");
      assert.equal(lines.length, 6, read);
      assert.ok(
        lines.some((l) => /ICMP echo request/.test(l)),
        read,
      );
    } finally {
      await pinger;
    }
    // Without the page's cookie or the token: refused.
    assert.equal((await fetch(`${ui.origin}${href}`)).status, 401);
    await page.click(".tabs button[data-tab=objects]");
  });

  test("vm1's console held by another client (as by `qnet console`): the page says so, then takes over", async () => {
    const serial = join(env.stateRoot, "lab", "vm", "vm1.serial");
    const other = connect(serial);
    await new Promise((resolve, reject) => {
      other.once("connect", resolve);
      other.once("error", reject);
    });
    await sleep(300);
    try {
      await page.click(".tabs button[data-tab=objects]");
      await page.click('button[data-console="vm1"]');
      await page.waitForFunction(
        () =>
          document.getElementById("console-status")?.textContent?.includes("holds vm1's console"),
        null,
        { timeout: 10_000 },
      );
    } finally {
      other.destroy();
    }
    await page.waitForFunction(
      () =>
        document.getElementById("console-status")?.textContent ===
        "connected to vm1's serial console",
      null,
      { timeout: 5_000 },
    );
    await page.locator('[data-console-vm="vm1"] .xterm').click();
    await page.keyboard.type("echo held-$((3*3))\n");
    await page.waitForFunction(
      () =>
        document
          .querySelector('[data-console-vm="vm1"] .xterm-rows')
          ?.textContent?.includes("held-9"),
      null,
      { timeout: 10_000 },
    );
    await page.click('[data-console-tab="vm1"] .x');
    assert.equal(await page.locator('[data-console-vm="vm1"]').count(), 0);
  });

  test("killing vm1's QEMU marks it down within 3 s", async () => {
    const pid = Number(readFileSync(join(env.stateRoot, "lab", "vm", "vm1.pid"), "utf8").trim());
    assert.ok(pid > 1);
    const t0 = Date.now();
    process.kill(pid, "SIGKILL");
    await page.waitForSelector('tr[data-key="vm:vm1"][data-state="missing"]', { timeout: 3_000 });
    await page.waitForFunction(
      // biome-ignore lint/suspicious/noExplicitAny: cytoscape
      () => (window as any).qnetGraph.getElementById("vm:vm1").data("state") === "missing",
      null,
      { timeout: Math.max(1, 3_000 - (Date.now() - t0)) },
    );
    const ms = Date.now() - t0;
    console.log(`# vm1 shown down ${ms} ms after its QEMU was killed`);
    assert.ok(ms <= 3_000, `${ms} ms`);
    assert.equal(await page.locator("#health").textContent(), "drift");
    const g = await graphFacts(page);
    assert.equal(g.nodes.find((n) => n.id === "vm:vm0")?.state, "present");
    await page.screenshot({ path: screenshotPath("4-vm1-down") });
  });

  test("SIGINT stops the server cleanly: exit 0, port closed, console released, no process left", async () => {
    const port = Number(new URL(ui.url).port);
    // The page still holds its state and console WebSockets.
    assert.equal(await page.locator('[data-console-vm="vm0"]').count(), 1);
    ui.child.kill("SIGINT");
    const code = await Promise.race([ui.exited, sleep(8_000).then(() => "still running")]);
    assert.equal(code, 0, ui.stderr());
    await assert.rejects(
      new Promise((resolve, reject) => {
        const s = connect(port, "127.0.0.1");
        s.once("connect", () => {
          s.destroy();
          resolve(null);
        });
        s.once("error", reject);
      }),
      /ECONNREFUSED/,
    );
    // Nothing qnet ui started runs in the lab's namespace: only QEMU and dnsmasq, by their pidfiles.
    const owned = new Set<number>();
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(dir, e.name));
        else if (e.name.endsWith(".pid"))
          owned.add(Number(readFileSync(join(dir, e.name), "utf8").trim()));
      }
    };
    walk(join(env.stateRoot, "lab"));
    const inNs = sh(["ip", "netns", "pids", ns]).split("\n").filter(Boolean).map(Number);
    assert.ok(inNs.length >= 2, `QEMU of vm0 and dnsmasq run: ${inNs}`);
    for (const pid of inNs) assert.ok(owned.has(pid), `pid ${pid} in ${ns} is not the lab's`);
    // vm0's serial console is free again: a plain client gets its shell.
    const serial = join(env.stateRoot, "lab", "vm", "vm0.serial");
    assert.ok(await serialAnswers(serial, "echo free-$((2*3))", "free-6"));
  });
});

describe("qnet ui: --listen on a non-loopback address", () => {
  const ns = `qnt-ui-l-${process.pid}`;
  before(() => {
    addNetns(ns);
    // A non-loopback address, on the namespace's own lo (nothing outside can reach it).
    sh(["ip", "-n", ns, "addr", "add", "192.0.2.10/32", "dev", "lo"]);
  });
  after(() => delNetns(ns));

  test("warns that the consoles are exposed, serves on that address, stops on SIGINT", async () => {
    // Inside a namespace of its own: the address exists only there.
    const ui = await startUi(
      [example("private-lan"), "--listen", "192.0.2.10"],
      ["ip", "netns", "exec", ns],
    );
    try {
      for (let i = 0; i < 20 && !ui.stderr().includes("Ctrl-C"); i++) await sleep(100);
      assert.match(ui.url, /^http:\/\/192\.0\.2\.10:\d+\/\?token=/);
      assert.match(ui.stderr(), /warning: --listen 192\.0\.2\.10 is not a loopback address/);
      assert.match(ui.stderr(), /consoles/);
    } finally {
      ui.child.kill("SIGINT");
    }
    assert.equal(await ui.exited, 0, ui.stderr());
  });
});
