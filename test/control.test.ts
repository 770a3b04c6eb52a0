/**
 * Black-box tests of the daemon's control channel: the log-reopen signal (never SIGUSR1 on Deno, which opens
 * a debugger), the stage handed to a re-executed process (only through the fd its parent gave it), and
 * starts cut short (by --stop, or by --start-timeout). Under `bun test` the daemon is a built binary, under
 * `deno test` it is `deno task daemonic run`.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, renameSync } from "node:fs";
import { after, describe, test } from "node:test";
import {
  alive, childrenOf, compiledTarget, eventually, FIXTURES, procFds, readOr, run, runTarget, RUNTIME, Sandbox, sandboxed, sleep, type Target,
  waitGone,
} from "./_helpers.ts";

const ENTRIES = ["logger.ts", "server.ts"];
const buildDir = new Sandbox();
after(() => buildDir.cleanup());
const target: Target = RUNTIME === "bun" ? await compiledTarget(ENTRIES, buildDir.dir) : runTarget;
const runner = (entry: string, args: string[]) => target.argv(`${FIXTURES}/${entry}`, args);

/** Listening TCP sockets (local address:port, hex as in /proc/net/tcp) held by any of `pids`. */
function listeningPorts(pids: number[]): string[] {
  const found: string[] = [];
  for (const pid of pids) {
    const inodes = new Set([...procFds(pid).values()].map((t) => /^socket:\[(\d+)\]$/.exec(t)?.[1]).filter(Boolean));
    for (const table of ["tcp", "tcp6"]) {
      for (const f of readOr(`/proc/${pid}/net/${table}`).split("\n").slice(1).map((l) => l.trim().split(/\s+/))) {
        if (f[3] === "0A" && inodes.has(f[9])) found.push(`${pid} ${f[1]}`);
      }
    }
  }
  return found.sort();
}

/** A separate process trying to connect to 127.0.0.1:9229 (Deno's inspector) about every millisecond until
 * `stop()`; resolves with how many connections it got. */
function pollInspector(sb: Sandbox): { stop(): Promise<number> } {
  const stopFile = sb.path("poller.stop");
  const script = `
import os, socket, time
n = 0
while not os.path.exists(${JSON.stringify(stopFile)}):
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", 9229)); n += 1
    except OSError:
        pass
    s.close(); time.sleep(0.001)
print(n)`;
  const child = spawn("python3", ["-c", script], { stdio: ["ignore", "pipe", "inherit"] });
  sb.track(child.pid);
  let out = "";
  child.stdout!.on("data", (d) => out += d);
  const done = new Promise<void>((r) => child.on("close", () => r()));
  return {
    async stop() {
      run(["touch", stopFile]);
      await done;
      return Number(out.trim());
    },
  };
}

const reopenedLines = (file: string) => readOr(file).split("\n").filter((l) => l.includes("reopened log file")).length;

describe(`log reopen signal (${RUNTIME})`, () => {
  for (const workers of [0, 1]) {
    test(`${workers ? "a master and a worker" : "a daemon"}: 20 logrotate-style reopens by --reopen-logs and kill -USR1 open no debugger and no port; kill -URG reopens`, sandboxed(async (sb) => {
      const pidFile = sb.path("d.pid"), logFile = sb.path("d.log");
      const r = run(runner("logger.ts", ["--daemon", "--pid-file", pidFile, "--log-file", logFile, ...(workers ? ["--workers", "1"] : []), "--", "r1"]));
      const pid = sb.track(Number(r.stdout.trim()) || parseInt(readOr(pidFile), 10));
      assert.equal(r.status, 0, r.stderr);
      const pids = [pid, ...childrenOf(pid)];
      pids.forEach((p) => sb.track(p));
      assert.equal(pids.length, 1 + workers);
      await sleep(700); // past the 500 ms after which Deno reacts to SIGUSR1
      const portsBefore = listeningPorts(pids);
      const poller = pollInspector(sb);
      for (let i = 1; i <= 20; i++) {
        renameSync(logFile, `${logFile}.${i}`);
        const reopen = run(runner("logger.ts", ["--reopen-logs", "--pid-file", pidFile]));
        assert.equal(reopen.status, 0, reopen.stderr);
        assert.ok(await eventually(() => reopenedLines(logFile) >= pids.length), `rotation ${i}: the new log got no reopen line`);
        for (const p of pids) process.kill(p, "SIGUSR1");
        await sleep(20);
      }
      await sleep(300);
      assert.equal(await poller.stop(), 0, "a client connected to 127.0.0.1:9229 during the reopens");
      assert.deepEqual(listeningPorts(pids), portsBefore, "a new listening port appeared in the daemon");
      for (const p of pids) assert.ok(alive(p), `pid ${p} died of a signal`);
      // The signal itself, as a postrotate `kill` would send it: the master passes it on to its workers.
      renameSync(logFile, `${logFile}.21`);
      process.kill(pid, "SIGURG");
      assert.ok(await eventually(() => reopenedLines(logFile) >= pids.length), "kill -URG did not reopen every process's log");
      assert.equal(run(runner("logger.ts", ["--stop", "--pid-file", pidFile])).status, 0);
    }));
  }
});
