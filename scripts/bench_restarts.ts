/**
 * The bench's "requests failed during 5 rolling restarts": `net.ipv4.tcp_migrate_req` at 0 (restored after),
 * wrk keep-alive (`-c32`) and fresh-connection (`-c8 -H "Connection: close"`) load at once, through 5 `--reload`s
 * of 2 workers of the bench binary and of a plain keep-alive `--daemon` (the binary, and Deno's CLI), with the
 * reuseport migration program on and off (`DAEMONIC_FFI_WITHOUT=bpf`), and through one `--upgrade`; beside
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

/** One row: `command` (the runner) started with `args`, then `action` run `times` under the loads. */
interface RestartCase {
  label: string;
  command: string[];
  args: string[];
  action: "--reload" | "--upgrade";
  times: number;
  program: boolean;
}

async function oneRun(
  c: RestartCase,
  wrk: string,
  dir: string,
  port: number,
): Promise<{ keepAlive: WrkResult; fresh: WrkResult }> {
  const pidFile = join(dir, "restarts.pid"), logFile = join(dir, "restarts.log");
  const env = { ...process.env, DAEMONIC_FFI_WITHOUT: c.program ? "" : "bpf" };
  const [path, ...pre] = c.command;
  const started = spawnSync(path, [
    ...pre,
    "--daemon",
    ...c.args,
    "--pid-file",
    pidFile,
    "--log-file",
    logFile,
    "--",
    String(port),
  ], { env, encoding: "utf8" });
  if (started.status !== 0) throw new Error(`the daemon did not start: ${started.stderr}`);
  try {
    return await underLoad(wrk, `http://127.0.0.1:${port}/`, c.times, async () => {
      writeFileSync(KNOB, "0"); // other work on the machine may set it; the measurement is about 0
      // Not spawnSync: the action waits for the outcome, and the loads' timers go on meanwhile.
      const action = Bun.spawn([...c.command, c.action, "--pid-file", pidFile], {
        env,
        stdout: "pipe",
        stderr: "pipe",
      });
      if (await action.exited !== 0) throw new Error(`${c.action} failed: ${await new Response(action.stderr).text()}`);
    });
  } finally {
    spawnSync(path, [...pre, "--stop", "--pid-file", pidFile]);
  }
}

/** Both loads against `url` for the time `times` restarts take, `restart(i)` resolving when the i-th is done. */
async function underLoad(
  wrk: string,
  url: string,
  times: number,
  restart: (i: number) => Promise<void>,
): Promise<{ keepAlive: WrkResult; fresh: WrkResult }> {
  const load = (args: string[]) =>
    Bun.spawn([wrk, "-t1", ...args, `-d${times * 3 + 2}s`, url], { stdout: "pipe", stderr: "pipe" });
  const keepAlive = load(["-c32"]), fresh = load(["-c8", "-H", "Connection: close"]);
  await Bun.sleep(1000);
  for (let i = 1; i <= times; i++) await restart(i);
  const [k, f] = await Promise.all([new Response(keepAlive.stdout).text(), new Response(fresh.stdout).text()]);
  return { keepAlive: parseWrk(k), fresh: parseWrk(f) };
}

const UNICORN_APP = `run ->(env) { [200, { "content-type" => "text/plain" }, ["ok\\n"]] }\n`;
const unicornConfig = (port: number, dir: string) =>
  `worker_processes 2
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
  if (
    !unicorn &&
    spawnSync("apt-get", ["install", "-y", "-qq", "unicorn"], {
        env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      }).status === 0
  ) unicorn = "/usr/bin/unicorn";
  if (!unicorn) return "| Unicorn 6, 2 workers, USR2 + QUIT (`unicorn` not installed, apt-get failed) | – | – |";
  const pidFile = join(dir, "unicorn.pid"), ru = join(dir, "config.ru"), conf = join(dir, "unicorn.conf.rb");
  writeFileSync(ru, UNICORN_APP);
  writeFileSync(conf, unicornConfig(port, dir));
  if (spawnSync(unicorn, ["-D", "-c", conf, ru]).status !== 0) return "| Unicorn: did not start | – | – |";
  // Between USR2 and the new master's start the pid file is at `.oldbin` only: 0 then.
  const pid = (file = pidFile) => existsSync(file) ? Number(readFileSync(file, "utf8")) || 0 : 0;
  try {
    for (let t = 0; t < 100 && !existsSync(pidFile); t++) await Bun.sleep(50);
    const { keepAlive, fresh } = await underLoad(wrk, `http://127.0.0.1:${port}/`, RELOADS, async () => {
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

/** The rows: 2 workers and keep-alive (the binary) with the program on and off, keep-alive on Deno, an upgrade. */
function restartCases(bin: string, denoCli: string[]): RestartCase[] {
  const program = (on: boolean) =>
    on ? "program on (as root)" : "program off (`DAEMONIC_FFI_WITHOUT=bpf`, as without root)";
  const cases: RestartCase[] = [];
  for (const on of [true, false]) {
    cases.push({
      label: `daemonic, 2 workers: ${RELOADS} \`--reload\`s, ${program(on)}`,
      command: [bin],
      args: ["--workers", "2"],
      action: "--reload",
      times: RELOADS,
      program: on,
    });
    cases.push({
      label: `daemonic, plain \`--daemon\` (keep-alive): ${RELOADS} \`--reload\`s, ${program(on)}`,
      command: [bin],
      args: [],
      action: "--reload",
      times: RELOADS,
      program: on,
    });
  }
  if (denoCli.length) {
    cases.push({
      label: `\`deno run … src/cli.ts run ENTRY --daemon\` (keep-alive): ${RELOADS} \`--reload\`s, ${program(true)}`,
      command: denoCli,
      args: [],
      action: "--reload",
      times: RELOADS,
      program: true,
    });
  }
  cases.push({
    label: `daemonic, 2 workers: one \`--upgrade\` (a new master), ${program(true)}`,
    command: [bin],
    args: ["--workers", "2"],
    action: "--upgrade",
    times: 1,
    program: true,
  });
  return cases;
}

/** Runs the measurement for each case; the markdown section, or one line saying why not. `denoCli`: the
 * runner under Deno (`deno run -A … src/cli.ts run ENTRY`), or none. */
export async function restartLosses(
  bin: string,
  wrk: string | undefined,
  dir: string,
  freePort: () => Promise<number>,
  denoCli: string[] = [],
): Promise<string[]> {
  const title =
    `### Requests failed during rolling restarts (\`net.ipv4.tcp_migrate_req = 0\`, wrk keep-alive \`-c32\` and fresh-connection \`-c8 -H "Connection: close"\` at once)`;
  if (!wrk) return [title, "", "skipped: wrk not installed (Debian package `wrk`)", ""];
  if (process.getuid?.() !== 0) {
    return [title, "", "skipped: needs root (it sets the sysctl and loads the BPF program)", ""];
  }
  const saved = readFileSync(KNOB, "utf8").trim();
  const lines = [
    title,
    "",
    "| daemon (daemonic: the reuseport migration program) | keep-alive: failed / requests | fresh connections: failed / requests |",
    "| --- | ---: | ---: |",
  ];
  try {
    for (const c of restartCases(bin, denoCli)) {
      try {
        const { keepAlive, fresh } = await oneRun(c, wrk, dir, await freePort());
        lines.push(
          `| ${c.label} | ${keepAlive.failed} / ${keepAlive.requests} | ${fresh.failed} / ${fresh.requests} |`,
        );
      } catch (err) {
        lines.push(`| ${c.label} | failed: ${(err as Error).message.split("\n")[0]} | |`);
      }
    }
    writeFileSync(KNOB, "0");
    lines.push(
      await unicornRow(wrk, dir, await freePort()).catch((err) =>
        `| Unicorn: failed: ${(err as Error).message} | – | – |`
      ),
    );
  } finally {
    writeFileSync(KNOB, saved);
  }
  return [...lines, ""];
}
