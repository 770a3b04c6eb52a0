/**
 * Issue 21: no process on the Deno start path of a `Deno.serve` entry loads Deno's Node compatibility layer
 * (25–40 ms of every process). Each process of ours marks its steps in the `DAEMONIC_TRACE` file (src/trace.ts)
 * and says there once the layer has loaded (Deno's own flag, set by the first `node:` module or the `process`
 * global); an entry that imports `node:http` shows that the check sees it. It runs `deno` whatever runtime runs
 * this file, so `npm test` runs it once, in the bun pass (scripts/test.sh).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { after, describe, test } from "node:test";
import {
  alive,
  childrenOf,
  DENO,
  eventually,
  exchange,
  freePort,
  readOr,
  run,
  Sandbox,
  sandboxed,
} from "./_helpers.ts";
import { installProject, userProject } from "./_project.ts";

const box = new Sandbox();
const dir = box.path("app");
installProject(dir, userProject().tarball);
writeFileSync(
  `${dir}/server.ts`,
  `Deno.serve({ port: Number(Deno.args[0]), hostname: "127.0.0.1", onListen() {} }, () => new Response("ok\\n"));\n`,
);
writeFileSync(
  `${dir}/node_server.ts`,
  `import http from "node:http";\n` +
    `http.createServer((_, res) => res.end("ok\\n")).listen(Number(process.argv[2]), "127.0.0.1");\n`,
);
after(() => box.cleanup());
const trace = `${dir}/trace`;
const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1", DAEMONIC_TRACE: trace };
delete env.INIT_CWD;
const daemonic = (entry: string, args: string[]) =>
  run([DENO, "run", "-A", "npm:daemonic", "run", entry, "--pid-file", "run.pid", ...args], {
    cwd: dir,
    env,
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
        const started = daemonic("server.ts", ["--daemon", ...extra, "--log-file", "app.log", "--", String(port)]);
        const pid = sb.track(Number(started.stdout.trim()));
        assert.equal(started.status, 0, `${started.stderr}\n${readOr(`${dir}/app.log`)}`);
        const children = childrenOf(pid).map((p) => sb.track(p));
        assert.match(await exchange(port), /ok/);
        assert.equal(daemonic("server.ts", ["--status"]).status, 0);
        assert.equal(daemonic("server.ts", ["--list"]).status, 0);
        assert.equal(daemonic("server.ts", ["--stop"]).status, 0);
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
          env,
          stdio: "ignore",
        });
        const pid = sb.track(child.pid);
        const exited = new Promise((resolve) => child.on("close", resolve));
        assert.ok(await eventually(() => /foreground: entry ready/.test(readOr(trace)), 30_000), readOr(trace));
        assert.match(await exchange(port), /ok/);
        process.kill(pid, "SIGTERM");
        await exited;
        if (entry === "server.ts") assertNoNodeLayer("the foreground", [/^foreground: entry ready/]);
        else assert.match(readOr(trace), /foreground: entry ready \[node layer loaded\]/);
      }
    }),
  );
});
