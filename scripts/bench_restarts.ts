/**
 * The bench's "requests failed during 5 rolling restarts": 2 workers of the bench binary, `net.ipv4.tcp_migrate_req`
 * at 0 (restored after), wrk keep-alive (`-c32`), pipelined keep-alive (`-c8`, 4 requests per connection at a
 * time) and fresh-connection (`-c8 -H "Connection: close"`) load at once, 5 `--reload`s, with the reuseport
 * migration program on and off (`DAEMONIC_FFI_WITHOUT=bpf`).
 * Needs root (the sysctl, the program); returns the report's markdown lines.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const PIPELINE = join(dirname(fileURLToPath(import.meta.url)), "..", "test", "fixtures", "pipeline.lua");
const KNOB = "/proc/sys/net/ipv4/tcp_migrate_req";
const RELOADS = 5;

interface WrkResult {
  requests: number;
  failed: number;
  detail: string;
}

function parseWrk(stdout: string): WrkResult {
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? NaN);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
  const errors = socket ? socket.slice(1).map(Number).reduce((a, b) => a + b, 0) : 0;
  return { requests, failed: errors + non2xx, detail: socket ? socket[0] : "no socket errors" };
}

async function oneRun(bin: string, wrk: string, dir: string, port: number, program: boolean): Promise<Record<"keepAlive" | "pipelined" | "fresh", WrkResult>> {
  const pidFile = join(dir, `restarts-${program}.pid`), logFile = join(dir, `restarts-${program}.log`);
  const env = { ...process.env, DAEMONIC_FFI_WITHOUT: program ? "" : "bpf" };
  const started = spawnSync(bin, ["--daemon", "--workers", "2", "--pid-file", pidFile, "--log-file", logFile, "--", String(port)], { env, encoding: "utf8" });
  if (started.status !== 0) throw new Error(`the daemon did not start: ${started.stderr}`);
  try {
    const url = `http://127.0.0.1:${port}/`, seconds = `${RELOADS * 3 + 2}s`;
    const load = (args: string[]) => Bun.spawn([wrk, "-t1", ...args, `-d${seconds}`, url], { stdout: "pipe", stderr: "pipe" });
    const keepAlive = load(["-c32"]), pipelined = load(["-c8", "-s", PIPELINE]), fresh = load(["-c8", "-H", "Connection: close"]);
    await Bun.sleep(1000);
    for (let i = 1; i <= RELOADS; i++) {
      writeFileSync(KNOB, "0"); // other work on the machine may set it; the measurement is about 0
      spawnSync(bin, ["--reload", "--pid-file", pidFile]);
      const deadline = Date.now() + 20_000;
      while ((readFileSync(logFile, "utf8").match(/rolling restart done/g)?.length ?? 0) < i && Date.now() < deadline) await Bun.sleep(50);
    }
    const [k, p, f] = await Promise.all([keepAlive, pipelined, fresh].map((wrk) => new Response(wrk.stdout).text()));
    return { keepAlive: parseWrk(k), pipelined: parseWrk(p), fresh: parseWrk(f) };
  } finally {
    spawnSync(bin, ["--stop", "--pid-file", pidFile]);
  }
}

/** Runs the measurement with the program on and off; the markdown section, or one line saying why not. */
export async function restartLosses(bin: string, wrk: string | undefined, dir: string, freePort: () => Promise<number>): Promise<string[]> {
  const title = `### Requests failed during ${RELOADS} rolling restarts (2 workers, \`net.ipv4.tcp_migrate_req = 0\`, wrk keep-alive \`-c32\`, pipelined \`-c8 -s pipeline.lua\` (4 requests at a time) and fresh-connection \`-c8 -H "Connection: close"\` at once)`;
  if (!wrk) return [title, "", "skipped: wrk not installed (Debian package `wrk`)", ""];
  if (process.getuid?.() !== 0) return [title, "", "skipped: needs root (it sets the sysctl and loads the BPF program)", ""];
  const saved = readFileSync(KNOB, "utf8").trim();
  const lines = [title, "", "| reuseport migration program | keep-alive: failed / requests | pipelined: failed / requests | fresh connections: failed / requests |", "| --- | ---: | ---: | ---: |"];
  try {
    for (const program of [true, false]) {
      try {
        const { keepAlive, pipelined, fresh } = await oneRun(bin, wrk, dir, await freePort(), program);
        const cells = [keepAlive, pipelined, fresh].map((r) => `${r.failed} / ${r.requests}`).join(" | ");
        lines.push(`| ${program ? "on (as root)" : "off (`DAEMONIC_FFI_WITHOUT=bpf`, as without root)"} | ${cells} |`);
      } catch (err) {
        lines.push(`| ${program ? "on" : "off"} | failed: ${(err as Error).message} | | |`);
      }
    }
  } finally {
    writeFileSync(KNOB, saved);
  }
  return [...lines, ""];
}
