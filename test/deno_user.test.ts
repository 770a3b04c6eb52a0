/**
 * The README's Deno commands as a user types them in a project of their own: the packed package installed
 * with `npm install` of the tarball, a `Deno.serve` entry, no deno.json, no runtime flag but `-A`. The runner
 * must hand the processes it starts what they need itself (`--unstable-net` for the workers' shared port).
 * It runs `deno` whatever runtime runs this file, so `npm test` runs it once, in the bun pass (scripts/test.sh).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, realpathSync, writeFileSync } from "node:fs";
import { after, describe, test } from "node:test";
import {
  alive,
  childrenOf,
  DENO,
  eventually,
  exchange,
  freePort,
  readOr,
  ROOT,
  run,
  Sandbox,
  sandboxed,
  sleep,
} from "./_helpers.ts";
import { installProject, userProject } from "./_project.ts";

const SERVER =
  `Deno.serve({ port: Number(Deno.args[0]), hostname: "127.0.0.1", onListen() {} }, () => new Response("Hello from PID " + Deno.pid + "\\n"));\n`;

// A fresh project with the tarball installed and server.ts, shared by this file's tests (each its own files).
const box = new Sandbox();
const dir = box.path("app");
installProject(dir, userProject().tarball);
writeFileSync(`${dir}/server.ts`, SERVER);
after(() => box.cleanup());
const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1" }; // as typed in a shell, outside npm
delete env.INIT_CWD;
const deno = (args: string[]) => run([DENO, ...args], { cwd: dir, env, timeout: 60_000 });

async function pidsAnswering(port: number, count: number): Promise<Set<number>> {
  const pids = new Set<number>();
  for (let i = 0; i < 200 && pids.size < count; i++) {
    const text = await exchange(port).catch(() => sleep(50).then(() => ""));
    const m = /Hello from PID (\d+)/.exec(text);
    if (m) pids.add(Number(m[1]));
  }
  return pids;
}

/** Every module `file` loads through static imports, as Deno's module graph (`deno info`) has them. */
function staticImports(file: string): string[] {
  const info = run([DENO, "info", "--json", file], { cwd: ROOT });
  assert.equal(info.status, 0, info.stderr);
  type Dep = { code?: { specifier: string }; isDynamic?: boolean };
  const graph = new Map<string, Dep[]>();
  for (const m of JSON.parse(info.stdout).modules as { specifier: string; dependencies?: Dep[] }[]) {
    graph.set(m.specifier, m.dependencies ?? []);
  }
  const seen = new Set<string>(), stack = [`file://${file}`];
  while (stack.length) {
    const at = stack.pop()!;
    if (seen.has(at)) continue;
    seen.add(at);
    for (const d of graph.get(at) ?? []) if (d.code && !d.isDynamic) stack.push(d.code.specifier);
  }
  return [...seen];
}

describe("a Deno user's project: deno run -A npm:daemonic …, as the README types it", () => {
  test(
    "--daemon --workers 2, --status, --reload (a rolling restart), --stop; no --unstable-net typed",
    sandboxed(async (sb) => {
      const port = await freePort();
      const daemonic = (args: string[]) =>
        deno(["run", "-A", "npm:daemonic", "run", "server.ts", "--pid-file", "run.pid", ...args]);
      const started = daemonic(["--daemon", "--workers", "2", "--log-file", "app.log", "--", String(port)]);
      const master = sb.track(Number(started.stdout.trim()));
      assert.equal(started.status, 0, `${started.stderr}\n${readOr(`${dir}/app.log`)}`);
      const workers = childrenOf(master).map((p) => sb.track(p));
      assert.equal(workers.length, 2);
      assert.deepEqual([...await pidsAnswering(port, 2)].sort(), [...workers].sort());
      assert.equal(daemonic(["--status"]).status, 0);

      const reload = daemonic(["--reload"]);
      assert.equal(reload.status, 0, reload.stderr);
      assert.ok(
        await eventually(() => /rolling restart done/.test(readOr(`${dir}/app.log`)), 30_000),
        readOr(`${dir}/app.log`),
      );
      const renewed = childrenOf(master).map((p) => sb.track(p));
      assert.equal(renewed.length, 2);
      for (const pid of workers) assert.ok(!renewed.includes(pid) && !alive(pid), `old worker ${pid} still there`);
      assert.match(await exchange(port), /Hello from PID \d+/);

      const stop = daemonic(["--stop"]);
      assert.equal(stop.status, 0, stop.stderr);
      for (const pid of [master, ...renewed]) assert.ok(await eventually(() => !alive(pid)), `${pid} left behind`);
      assert.ok(!existsSync(`${dir}/run.pid`));
      assert.doesNotMatch(readOr(`${dir}/app.log`), /unstable-net|before it was ready|exited with code [1-9]/);
    }),
  );

  test(
    "--daemon (keep-alive) restarts a killed entry; the foreground with --workers 2 stops on SIGTERM",
    sandboxed(async (sb) => {
      const port = await freePort();
      const daemonic = (args: string[]) => deno(["run", "-A", "npm:daemonic", "run", "server.ts", ...args]);
      const started = daemonic(["--daemon", "--pid-file", "k.pid", "--log-file", "k.log", "--", String(port)]);
      const supervisor = sb.track(Number(started.stdout.trim()));
      assert.equal(started.status, 0, `${started.stderr}\n${readOr(`${dir}/k.log`)}`);
      const [entry] = childrenOf(supervisor).map((p) => sb.track(p));
      assert.deepEqual([...await pidsAnswering(port, 1)], [entry]);
      process.kill(entry, "SIGKILL");
      let next = 0;
      assert.ok(
        await eventually(() => (next = childrenOf(supervisor).find((p) => p !== entry) ?? 0) > 0, 10_000),
        readOr(`${dir}/k.log`),
      );
      sb.track(next);
      assert.deepEqual([...await pidsAnswering(port, 1)], [next]);
      assert.equal(daemonic(["--stop", "--pid-file", "k.pid"]).status, 0);
      for (const pid of [supervisor, next]) assert.ok(await eventually(() => !alive(pid)), `${pid} left behind`);

      const fgPort = await freePort();
      const child = spawn(DENO, [
        "run",
        "-A",
        "npm:daemonic",
        "run",
        "server.ts",
        "--workers",
        "2",
        "--",
        String(fgPort),
      ], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
      const fg = sb.track(child.pid);
      let output = "";
      child.stdout!.on("data", (d) => output += d);
      child.stderr!.on("data", (d) => output += d);
      const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
      assert.ok(await eventually(() => /2 workers ready/.test(output), 30_000), output);
      const answering = await pidsAnswering(fgPort, 2);
      const fgWorkers = childrenOf(fg).map((p) => sb.track(p));
      assert.deepEqual([...answering].sort(), [...fgWorkers].sort(), output);
      process.kill(fg, "SIGTERM");
      assert.equal(await exited, 0, output);
      for (const pid of fgWorkers) assert.ok(await eventually(() => !alive(pid)), `${pid} left behind`);
    }),
  );

  test("--print-service: the unit's commands name the script npm:daemonic resolved to, so they run from --chdir", () => {
    mkdirSync(`${dir}/run`, { recursive: true }); // a word of the command line, not a path, though ./run exists
    const r = deno(["run", "-A", "npm:daemonic", "run", "server.ts", "--print-service"]);
    assert.equal(r.status, 0, r.stderr);
    const reload = /^ExecReload=(.*)$/m.exec(r.stdout)?.[1] ?? "";
    assert.equal(
      reload,
      `${
        realpathSync(DENO)
      } run --unstable-net -A ${dir}/node_modules/daemonic/dist/src/cli.js run ${dir}/server.ts --reload --pid-file /run/server/server.pid`,
    );
    assert.match(r.stdout, /^WorkingDirectory=\/$/m);
    const fromRoot = run(reload.split(" "), { cwd: "/", env });
    assert.equal(fromRoot.status, 7, fromRoot.stderr); // not running: the command itself ran
  });

  test("without -A: one line naming the fix, exit 77, nothing created", () => {
    const before = readdirSync(dir).sort();
    const r = deno([
      "run",
      "npm:daemonic",
      "run",
      "server.ts",
      "--daemon",
      "--pid-file",
      "run.pid",
      "--log-file",
      "app.log",
    ]);
    assert.equal(r.status, 77, r.stderr);
    assert.match(
      r.stderr,
      /^daemonic needs all permissions on Deno .*: run it with -A, e\.g\. deno run -A npm:daemonic run server\.ts\n$/,
    );
    assert.deepEqual(readdirSync(dir).sort(), before);
  });

  test("no node: module before the runner: --version and a missing entry load none of Deno's Node layer", () => {
    // Deno's debug log names every module it loads; its Node compatibility layer is ext:deno_node/….
    for (const [args, code] of [[["--version"], 0], [["run", "missing.ts"], 66]] as const) {
      const r = deno(["run", "-L", "debug", "-A", "npm:daemonic", ...args]);
      assert.equal(r.status, code, r.stderr.slice(-2000));
      assert.match(r.stderr, /ES module: file:\/\/.*\/node_modules\/daemonic\/dist\/src\/cli\.js/); // the log does list modules
      assert.deepEqual(r.stderr.match(/ext:deno_node\/\S+/g) ?? [], [], `${args.join(" ")} loaded node: modules`);
    }
  });

  test("no node: module in what every process loads before its role: the static imports of cli.ts and runner.ts", () => {
    for (const file of ["src/cli.ts", "src/runner.ts"]) {
      const loaded = staticImports(`${ROOT}/${file}`);
      assert.ok(loaded.length > 4, `walked only ${loaded}`);
      assert.deepEqual(loaded.filter((s) => s.startsWith("node:")), [], file);
    }
  });

  test("in this repository (a contributor): deno task daemonic run … is the same command from the sources", () => {
    const r = run([DENO, "task", "-q", "daemonic", "run", "test/fixtures/serve.ts", "--version"], { cwd: ROOT });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^serve \(daemonic \d+\.\d+\.\d+\)\n$/);
  });
});

// Issue 21: no process on the Deno start path of a `Deno.serve` entry loads Deno's Node compatibility layer
// (tens of ms a process). Each process marks its steps in the DAEMONIC_TRACE file (src/trace.ts) and says
// there once the layer has loaded; an entry that imports node:http shows that the check sees it.
writeFileSync(
  `${dir}/node_server.ts`,
  `import http from "node:http";\n` +
    `http.createServer((_, res) => res.end("ok\\n")).listen(Number(process.argv[2]), "127.0.0.1");\n`,
);
const trace = `${dir}/trace`;
const traced = { ...env, DAEMONIC_TRACE: trace };
const tracedRun = (entry: string, args: string[]) =>
  run([DENO, "run", "-A", "npm:daemonic", "run", entry, "--pid-file", "traced.pid", ...args], {
    cwd: dir,
    env: traced,
    timeout: 60_000,
  });

/** The trace's lines, by pid: each process's steps. */
function stepsByPid(): Map<number, string[]> {
  const byPid = new Map<number, string[]>();
  for (const line of readOr(trace).split("\n").filter(Boolean)) {
    const [pid, , ...step] = line.split(" ");
    byPid.set(Number(pid), [...byPid.get(Number(pid)) ?? [], step.join(" ")]);
  }
  return byPid;
}

/** Asserts that `roles` each marked a step in some process, and that no process loaded the Node layer. */
function assertNoNodeLayer(what: string, roles: RegExp[]): void {
  const steps = stepsByPid();
  const all = [...steps.values()].flat();
  for (const role of roles) assert.ok(all.some((s) => role.test(s)), `${what}: no step matches ${role}:\n${all}`);
  for (const [pid, marks] of steps) {
    assert.deepEqual(marks.filter((m) => m.includes("[node layer loaded]")), [], `${what}: pid ${pid} loaded it`);
  }
}

describe("the Deno start path of a Deno.serve entry loads no node: module", () => {
  test(
    "--daemon (keep-alive), --status, --stop; --no-keep-alive; --workers 2 and --list",
    sandboxed(async (sb) => {
      for (const extra of [[], ["--no-keep-alive"], ["--workers", "2"]]) {
        writeFileSync(trace, "");
        const port = await freePort();
        const started = tracedRun("server.ts", ["--daemon", ...extra, "--log-file", "traced.log", "--", String(port)]);
        const pid = sb.track(Number(started.stdout.trim()));
        assert.equal(started.status, 0, `${started.stderr}\n${readOr(`${dir}/traced.log`)}`);
        const children = childrenOf(pid).map((p) => sb.track(p));
        assert.match(await exchange(port), /Hello from PID|ok/);
        assert.equal(tracedRun("server.ts", ["--status"]).status, 0);
        assert.equal(tracedRun("server.ts", ["--list"]).status, 0);
        assert.equal(tracedRun("server.ts", ["--stop"]).status, 0);
        for (const p of [pid, ...children]) assert.ok(await eventually(() => !alive(p)), `${p} left behind`);
        const roles = extra.length === 0
          ? [/^launcher: READY/, /^worker: entry ready/, /^daemon: pid file taken over/]
          : extra[0] === "--no-keep-alive"
          ? [/^launcher: READY/, /^daemon: entry ready/]
          : [/^launcher: READY/, /^worker: entry ready/];
        assertNoNodeLayer(`--daemon ${extra.join(" ")}`, [...roles, /^action done/]);
      }
    }),
  );

  test(
    "the foreground; and an entry that imports node:http does load it (the check sees it)",
    sandboxed(async (sb) => {
      for (const entry of ["server.ts", "node_server.ts"]) {
        writeFileSync(trace, "");
        const port = await freePort();
        const child = spawn(DENO, ["run", "-A", "npm:daemonic", "run", entry, "--", String(port)], {
          cwd: dir,
          env: traced,
          stdio: "ignore",
        });
        const pid = sb.track(child.pid);
        const exited = new Promise((resolve) => child.on("close", resolve));
        assert.ok(await eventually(() => /foreground: entry ready/.test(readOr(trace)), 30_000), readOr(trace));
        assert.match(await exchange(port), /Hello from PID|ok/);
        process.kill(pid, "SIGTERM");
        await exited;
        if (entry === "server.ts") assertNoNodeLayer("the foreground", [/^foreground: entry ready/]);
        else assert.match(readOr(trace), /foreground: entry ready \[node layer loaded\]/);
      }
    }),
  );
});
