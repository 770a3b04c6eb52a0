/**
 * The bench's "requests failed during 5 rolling restarts": 2 workers of the bench binary, `net.ipv4.tcp_migrate_req`
 * at 0 (restored after), wrk keep-alive (`-c32`) and fresh-connection (`-c8 -H "Connection: close"`) load at
 * once, 5 `--reload`s, with the reuseport migration program on and off (`DAEMONIC_FFI_WITHOUT=bpf`); beside
 * them Unicorn (Debian's `unicorn`, installed here when missing) under the same load through 5 of its own
 * zero-downtime restarts: USR2, and the new master QUITs the old one once it forks (its documented config).
 * Needs root (the sysctl, the program, apt); returns the report's markdown lines.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { alive } from "./bench_proc.ts";

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

async function oneRun(bin: string, wrk: string, dir: string, port: number, program: boolean): Promise<{ keepAlive: WrkResult; fresh: WrkResult }> {
  const pidFile = join(dir, `restarts-${program}.pid`), logFile = join(dir, `restarts-${program}.log`);
  const env = { ...process.env, DAEMONIC_FFI_WITHOUT: program ? "" : "bpf" };
  const started = spawnSync(bin, ["--daemon", "--workers", "2", "--pid-file", pidFile, "--log-file", logFile, "--", String(port)], { env, encoding: "utf8" });
  if (started.status !== 0) throw new Error(`the daemon did not start: ${started.stderr}`);
  try {
    return await underLoad(wrk, `http://127.0.0.1:${port}/`, async (i) => {
      writeFileSync(KNOB, "0"); // other work on the machine may set it; the measurement is about 0
      spawnSync(bin, ["--reload", "--pid-file", pidFile]);
      const deadline = Date.now() + 20_000;
      while ((readFileSync(logFile, "utf8").match(/rolling restart done/g)?.length ?? 0) < i && Date.now() < deadline) await Bun.sleep(50);
    });
  } finally {
    spawnSync(bin, ["--stop", "--pid-file", pidFile]);
  }
}

/** Both loads against `url` for the time `reloads` restarts take, `restart(i)` resolving when the i-th is done. */
async function underLoad(wrk: string, url: string, restart: (i: number) => Promise<void>): Promise<{ keepAlive: WrkResult; fresh: WrkResult }> {
  const load = (args: string[]) => Bun.spawn([wrk, "-t1", ...args, `-d${RELOADS * 3 + 2}s`, url], { stdout: "pipe", stderr: "pipe" });
  const keepAlive = load(["-c32"]), fresh = load(["-c8", "-H", "Connection: close"]);
  await Bun.sleep(1000);
  for (let i = 1; i <= RELOADS; i++) await restart(i);
  const [k, f] = await Promise.all([new Response(keepAlive.stdout).text(), new Response(fresh.stdout).text()]);
  return { keepAlive: parseWrk(k), fresh: parseWrk(f) };
}

const UNICORN_APP = `run ->(env) { [200, { "content-type" => "text/plain" }, ["ok\\n"]] }\n`;
const unicornConfig = (port: number, dir: string) => `worker_processes 2
listen "127.0.0.1:${port}"
pid "${dir}/unicorn.pid"
stderr_path "${dir}/unicorn.log"
before_fork do |server, worker|
  old = "#{server.config[:pid]}.oldbin"
  Process.kill(:QUIT, File.read(old).to_i) rescue nil if File.exist?(old) && server.pid != old
end
`;

/** Unicorn 2 workers through 5 USR2 restarts under the same load; its row of the table. */
async function unicornRow(wrk: string, dir: string, port: number): Promise<string> {
  let unicorn = ["/usr/bin/unicorn", "/usr/local/bin/unicorn"].find(existsSync);
  if (!unicorn && spawnSync("apt-get", ["install", "-y", "-qq", "unicorn"], { env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } }).status === 0) unicorn = "/usr/bin/unicorn";
  if (!unicorn) return "| Unicorn 6, 2 workers, USR2 + QUIT (`unicorn` not installed, apt-get failed) | – | – |";
  const pidFile = join(dir, "unicorn.pid"), ru = join(dir, "config.ru"), conf = join(dir, "unicorn.conf.rb");
  writeFileSync(ru, UNICORN_APP);
  writeFileSync(conf, unicornConfig(port, dir));
  if (spawnSync(unicorn, ["-D", "-c", conf, ru]).status !== 0) return "| Unicorn: did not start | – | – |";
  // Between USR2 and the new master's start the pid file is at `.oldbin` only: 0 then.
  const pid = (file = pidFile) => existsSync(file) ? Number(readFileSync(file, "utf8")) || 0 : 0;
  try {
    for (let t = 0; t < 100 && !existsSync(pidFile); t++) await Bun.sleep(50);
    const { keepAlive, fresh } = await underLoad(wrk, `http://127.0.0.1:${port}/`, async () => {
      const old = pid();
      process.kill(old, "SIGUSR2");
      for (let t = 0; t < 400 && (pid() === old || pid() === 0 || alive(old)); t++) await Bun.sleep(50);
    });
    return `| Unicorn 6, 2 workers: 5 USR2 restarts (its documented config: the new master QUITs the old) | ${keepAlive.failed} / ${keepAlive.requests} | ${fresh.failed} / ${fresh.requests} |`;
  } finally {
    for (const master of [pid(), pid(`${pidFile}.oldbin`)].filter((p) => p > 0)) {
      process.kill(master, "SIGQUIT");
      for (let t = 0; t < 100 && alive(master); t++) await Bun.sleep(50);
    }
  }
}

/** Runs the measurement with the program on and off; the markdown section, or one line saying why not. */
export async function restartLosses(bin: string, wrk: string | undefined, dir: string, freePort: () => Promise<number>): Promise<string[]> {
  const title = `### Requests failed during ${RELOADS} rolling restarts (2 workers, \`net.ipv4.tcp_migrate_req = 0\`, wrk keep-alive \`-c32\` and fresh-connection \`-c8 -H "Connection: close"\` at once)`;
  if (!wrk) return [title, "", "skipped: wrk not installed (Debian package `wrk`)", ""];
  if (process.getuid?.() !== 0) return [title, "", "skipped: needs root (it sets the sysctl and loads the BPF program)", ""];
  const saved = readFileSync(KNOB, "utf8").trim();
  const lines = [title, "", "| daemon (daemonic: the reuseport migration program) | keep-alive: failed / requests | fresh connections: failed / requests |", "| --- | ---: | ---: |"];
  try {
    for (const program of [true, false]) {
      try {
        const { keepAlive, fresh } = await oneRun(bin, wrk, dir, await freePort(), program);
        lines.push(`| daemonic, 2 workers: 5 \`--reload\`s, program ${program ? "on (as root)" : "off (`DAEMONIC_FFI_WITHOUT=bpf`, as without root)"} | ${keepAlive.failed} / ${keepAlive.requests} | ${fresh.failed} / ${fresh.requests} |`);
      } catch (err) {
        lines.push(`| ${program ? "on" : "off"} | failed: ${(err as Error).message} | |`);
      }
    }
    writeFileSync(KNOB, "0");
    lines.push(await unicornRow(wrk, dir, await freePort()).catch((err) => `| Unicorn: failed: ${(err as Error).message} | – | – |`));
  } finally {
    writeFileSync(KNOB, saved);
  }
  return [...lines, ""];
}
