/**
 * The compatibility matrix: servers and frameworks, each unchanged, in the foreground, as a daemon, and as a
 * daemon with 2 workers through a --reload under a sequential client and a --stop. Under `bun test` each
 * entry is a compiled binary, under `deno test` it runs through the user's `deno run -A npm:daemonic run`
 * (the packed package, installed in a project: test/_project.ts). The three modes of
 * one entry run concurrently, each with its own temp dir and OS port.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import {
  alive,
  childrenOf,
  eventually,
  exchange,
  FIXTURES,
  freePort,
  type Ran,
  readOr,
  RUNTIME,
  Sandbox,
  sleep,
  targetFor,
} from "./_helpers.ts";

interface Entry {
  title: string;
  /** Under test/fixtures. */
  file: string;
  /** The runtimes it works on (the README's matrix says why not elsewhere). */
  on?: ("bun" | "deno")[];
  /** What GET / answers. */
  answer?: RegExp;
  /** Also answers a WebSocket message. */
  websocket?: boolean;
  /** A worker loop: never listens. */
  loop?: boolean;
}

const HELLO = /Hello from PID \d+/;
const ENTRIES: Entry[] = [
  { title: "Bun.serve / Deno.serve", file: "serve.ts" },
  { title: "node:http", file: "app.ts" },
  { title: "node:net", file: "plain.ts" },
  { title: "Hono, export default app", file: "frameworks/hono-default.ts", answer: /Hello Hono!/ },
  { title: "Hono, Bun.serve({ fetch: app.fetch }) / Deno.serve(app.fetch)", file: "frameworks/hono-serve.ts" },
  { title: "Elysia, .listen()", file: "frameworks/elysia-listen.ts", on: ["bun"] },
  { title: "Elysia, export default app", file: "frameworks/elysia-default.ts" },
  { title: "Express 5", file: "frameworks/express.js" },
  { title: "Fastify", file: "frameworks/fastify.ts" },
  { title: "Koa", file: "frameworks/koa.js" },
  { title: "WebSocket, the runtime's own", file: "frameworks/ws-runtime.ts", websocket: true },
  { title: "WebSocket, ws on node:http", file: "frameworks/ws-node.js", websocket: true },
  { title: "worker loop (setInterval)", file: "loop.ts", loop: true },
  { title: "export default { fetch }", file: "frameworks/fetch-default.ts" },
];
const here = ENTRIES.filter((e) => !e.on || e.on.includes(RUNTIME));

const buildDir = new Sandbox();
const target = await targetFor(here.map((e) => e.file), buildDir.dir);

// Lossless rolling restarts need the kernel to hand a retiring listener's queue to its siblings.
const knob = "/proc/sys/net/ipv4/tcp_migrate_req";
let savedKnob = "";
before(() => {
  savedKnob = readFileSync(knob, "utf8").trim();
  writeFileSync(knob, "1");
});
after(() => {
  writeFileSync(knob, savedKnob);
  buildDir.cleanup();
});

/** Runs the runner for `e` with `args` (the port after --, and in PORT for default exports) to completion. */
function runner(e: Entry, args: string[], port: number): Promise<Ran> {
  const argv = target.argv(`${FIXTURES}/${e.file}`, [...args, "--", String(port)]);
  const child = spawn(argv[0], argv.slice(1), {
    env: { ...process.env, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "", stderr = "";
  child.stdout!.on("data", (d) => stdout += d);
  child.stderr!.on("data", (d) => stderr += d);
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  return new Promise((resolve) =>
    child.on("close", (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    })
  );
}

async function answers(e: Entry, port: number): Promise<void> {
  let text = "";
  for (let i = 0; i < 100 && !text; i++) text = await exchange(port).catch(() => sleep(50).then(() => ""));
  assert.match(text, e.answer ?? HELLO);
  if (e.websocket) assert.match(await webSocketHello(port), HELLO);
}

function webSocketHello(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    const timer = setTimeout(() => reject(new Error("no WebSocket answer within 5 s")), 5000);
    ws.onopen = () => ws.send("hi");
    ws.onmessage = (m) => {
      clearTimeout(timer);
      ws.close();
      resolve(String(m.data));
    };
    ws.onerror = () => reject(new Error("WebSocket error"));
  });
}

async function foreground(e: Entry, sb: Sandbox): Promise<void> {
  const port = await freePort();
  const argv = target.argv(`${FIXTURES}/${e.file}`, ["--", String(port)]);
  const child = spawn(argv[0], argv.slice(1), {
    env: { ...process.env, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const pid = sb.track(child.pid);
  let output = "";
  child.stdout!.on("data", (d) => output += d);
  child.stderr!.on("data", (d) => output += d);
  const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
  if (e.loop) assert.ok(await eventually(() => /tick 3/.test(output), 10_000), output);
  else await answers(e, port);
  const runners = [pid, ...childrenOf(pid).map((p) => sb.track(p))]; // and whatever the runner started
  process.kill(pid, "SIGTERM");
  assert.equal(await exited, 0, output);
  assert.ok(await eventually(() => runners.every((p) => !alive(p))), `left behind: ${runners.filter(alive)}`);
}

async function daemon(e: Entry, sb: Sandbox): Promise<void> {
  const port = await freePort();
  const pidFile = sb.path("d.pid"), logFile = sb.path("d.log");
  const r = await runner(e, ["--daemon", "--pid-file", pidFile, "--log-file", logFile], port);
  const pid = sb.track(Number(r.stdout.trim()));
  assert.equal(r.status, 0, `${r.stderr}\n${readOr(logFile)}`);
  if (e.loop) assert.ok(await eventually(() => /tick 3/.test(readOr(logFile)), 10_000), readOr(logFile));
  else await answers(e, port);
  assert.equal((await runner(e, ["--stop", "--pid-file", pidFile], port)).status, 0);
  assert.ok(await eventually(() => !alive(pid)), `${pid} left behind`);
  assert.ok(!existsSync(pidFile));
}

/** Connects over and over, one connection at a time, until stopped; collects what failed. */
function sequentialClient(e: Entry, port: number): { answered(): number; stop(): Promise<string[]> } {
  let running = true, ok = 0;
  const failed: string[] = [];
  const done = (async () => {
    while (running) {
      try {
        const text = await exchange(port);
        if ((e.answer ?? HELLO).test(text)) ok++;
        else failed.push(`unexpected answer: ${text.slice(0, 80)}`);
      } catch (err) {
        failed.push(`${(err as Error).message} (tcp_migrate_req ${readFileSync(knob, "utf8").trim()})`);
      }
    }
  })();
  return { answered: () => ok, stop: async () => (running = false, await done, failed) };
}

async function workers(e: Entry, sb: Sandbox): Promise<void> {
  const port = await freePort();
  const pidFile = sb.path("w.pid"), logFile = sb.path("w.log");
  const r = await runner(e, ["--daemon", "--workers", "2", "--pid-file", pidFile, "--log-file", logFile], port);
  const master = sb.track(Number(r.stdout.trim()));
  assert.equal(r.status, 0, `${r.stderr}\n${readOr(logFile)}`);
  const before = childrenOf(master).map((p) => sb.track(p));
  assert.equal(before.length, 2);
  if (!e.loop) await answers(e, port);
  const client = e.loop ? undefined : sequentialClient(e, port);
  await sleep(200);
  assert.equal((await runner(e, ["--reload", "--pid-file", pidFile], port)).status, 0);
  assert.ok(await eventually(() => /rolling restart done/.test(readOr(logFile)), 30_000), readOr(logFile));
  const renewed = childrenOf(master).map((p) => sb.track(p));
  assert.equal(renewed.length, 2);
  for (const pid of before) assert.ok(!renewed.includes(pid) && !alive(pid), `old worker ${pid} still there`);
  if (client) {
    const mark = client.answered();
    assert.ok(await eventually(() => client.answered() > mark + 5), "no answers after the reload");
    assert.deepEqual(await client.stop(), []);
    await answers(e, port);
  } else {
    assert.ok(await eventually(() => (readOr(logFile).match(/tick \d+/g)?.length ?? 0) > 6, 10_000), readOr(logFile));
  }
  assert.equal((await runner(e, ["--stop", "--pid-file", pidFile], port)).status, 0);
  for (const pid of [master, ...renewed]) assert.ok(await eventually(() => !alive(pid)), `${pid} left behind`);
  assert.ok(!existsSync(pidFile));
}

describe(`compatibility matrix (${target.name})`, () => {
  for (const e of here) {
    test(`${e.title}: foreground, --daemon, --daemon --workers 2 with --reload and --stop`, async () => {
      const boxes = [new Sandbox(), new Sandbox(), new Sandbox()];
      try {
        const modes = await Promise.allSettled([foreground(e, boxes[0]), daemon(e, boxes[1]), workers(e, boxes[2])]);
        for (const mode of modes) if (mode.status === "rejected") throw mode.reason;
      } finally {
        for (const sb of boxes) sb.cleanup();
      }
    });
  }
});

describe(`where a framework cannot work (${target.name})`, () => {
  test(
    "Elysia's .listen() on Deno: Elysia itself refuses (its web-standard adapter has no listen), exit 69, nothing left",
    { skip: RUNTIME !== "deno" },
    async () => {
      const sb = new Sandbox();
      try {
        const e: Entry = { title: "Elysia, .listen()", file: "frameworks/elysia-listen.ts" };
        const pidFile = sb.path("e.pid");
        const r = await runner(
          e,
          ["--daemon", "--pid-file", pidFile, "--log-file", sb.path("e.log")],
          await freePort(),
        );
        assert.equal(r.status, 69, r.stderr);
        assert.match(
          r.stderr,
          /WebStandard does not support listen, you might want to export default Elysia.fetch instead/,
        );
        assert.ok(!existsSync(pidFile) && !existsSync(`${pidFile}.log-path`));
      } finally {
        sb.cleanup();
      }
    },
  );
});
