/**
 * `--metrics ADDR`: Prometheus's text exposition format (version 0.0.4) at `http://ADDR/metrics`, served
 * by the master (or keep-alive's supervisor), never by a process running the entry: each process's RSS and
 * CPU seconds, each worker's uptime, restarts, readiness and last unplanned exit; the daemon's start time
 * and version; `/ready` and `/live` for HTTP probes. The master's loop awaits a timer between ticks, so requests are
 * answered in between.
 *
 * @module
 */
import { host } from "../../ffi/_host.ts";
import type { Server } from "node:http";
import { RUNTIME } from "../_runtime.ts";
import { DaemonError } from "../errors.ts";
import { runnerLog } from "../log/lines.ts";
import { parseMetricsAddress } from "../cli/option_values.ts";
import { cpuSeconds, rssBytes } from "../overview.ts";
import type { DaemonStage } from "../stage.ts";
import { VERSION } from "../version.ts";

/** What the master shows (its own state, read at each scrape). */
export interface MetricsSource {
  /** Until every worker of the start is ready. */
  starting: boolean;
  /** Once a stop began. */
  stopping?: unknown;
  workers: readonly { id: number; pid: number; startedAt: number; ready: boolean; retireBy?: number }[];
  restarts: ReadonlyMap<number, number>;
  /** Per slot: the wait status of its last unplanned exit. */
  lastExits: ReadonlyMap<number, number>;
}

const escape = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

/** One metric family: HELP, TYPE, then a sample per labels. */
function family(
  name: string,
  type: "gauge" | "counter",
  help: string,
  samples: [Record<string, string>, number][],
): string {
  const lines = samples.map(([labels, value]) =>
    `${name}{${Object.entries(labels).map(([k, v]) => `${k}="${escape(v)}"`).join(",")}} ${value}`
  );
  return `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${lines.join("\n")}${lines.length ? "\n" : ""}`;
}

/** The exit code a shell would show for a wait status: the code, or 128 + the signal. */
const exitCode = (status: number) => (status & 0x7f ? 128 + (status & 0x7f) : (status >> 8) & 0xff);

/**
 * The exposition text for the master `source` of the daemon `name`.
 *
 * @example
 * ```ts
 * import { exposition } from "./metrics.ts";
 * const state = { starting: false, workers: [], restarts: new Map(), lastExits: new Map() };
 * const text = exposition("app", state, Date.now());
 * console.log(text.includes('daemonic_info{name="app"')); // true
 * ```
 */
export function exposition(name: string, source: MetricsSource, startedAt: number, now = Date.now()): string {
  const workers = source.workers.filter((w) => !w.retireBy);
  const processes: [Record<string, string>, number][] = [
    [{ name, process: "master", worker: "" }, host.pid()],
    ...workers.map((w): [Record<string, string>, number] => [{ name, process: "worker", worker: String(w.id) }, w.pid]),
  ];
  const slots = [...new Set([...workers.map((w) => w.id), ...source.restarts.keys()])].sort((a, b) => a - b);
  const slot = (id: number) => ({ name, worker: String(id) });
  return [
    family("daemonic_info", "gauge", "The daemon's name, daemonic's version and the runtime; always 1.", [[{
      name,
      version: VERSION,
      runtime: RUNTIME.key,
    }, 1]]),
    family(
      "daemonic_start_time_seconds",
      "gauge",
      "When the daemon's master started, in seconds since the Unix epoch.",
      [[{ name }, startedAt / 1000]],
    ),
    family("daemonic_ready", "gauge", "1 once the daemon is ready (every worker of its start), else 0.", [[
      { name },
      source.starting ? 0 : 1,
    ]]),
    family("daemonic_workers", "gauge", "Processes running the entry under the master.", [[{ name }, workers.length]]),
    family(
      "daemonic_process_resident_memory_bytes",
      "gauge",
      "Resident memory (VmRSS) of the master and of each worker.",
      processes.map(([l, pid]) => [l, rssBytes(pid)]),
    ),
    family(
      "daemonic_process_cpu_seconds_total",
      "counter",
      "User and system CPU time of the master and of each worker.",
      processes.map(([l, pid]) => [l, cpuSeconds(pid)]),
    ),
    family(
      "daemonic_worker_uptime_seconds",
      "gauge",
      "Seconds since the worker in the slot started.",
      workers.map((w) => [slot(w.id), (now - w.startedAt) / 1000]),
    ),
    family(
      "daemonic_worker_ready",
      "gauge",
      "1 when the worker in the slot is ready, else 0.",
      workers.map((w) => [slot(w.id), w.ready ? 1 : 0]),
    ),
    family(
      "daemonic_worker_restarts_total",
      "counter",
      "Restarts of the slot's worker since the daemon started (crashes and --max-memory).",
      slots.map((id) => [slot(id), source.restarts.get(id) ?? 0]),
    ),
    family(
      "daemonic_worker_last_exit_code",
      "gauge",
      "Exit code of the slot's last unplanned exit (128 + the signal when killed).",
      slots.flatMap((id): [Record<string, string>, number][] => {
        const status = source.lastExits.get(id);
        return status === undefined ? [] : [[slot(id), exitCode(status)]];
      }),
    ),
  ].join("");
}

/**
 * Serves {@linkcode exposition} on `stage.metrics`; a port that cannot be listened on ends the start
 * through `fatal`, except while a USR2 upgrade's old master (`PIDFILE.oldbin`) still holds it: then it
 * tries again each second.
 */
export async function serveMetrics(
  stage: DaemonStage,
  source: MetricsSource,
  fatal: (err: unknown) => never,
): Promise<Server | undefined> {
  const address = stage.metrics && parseMetricsAddress(stage.metrics);
  if (!address) return undefined;
  const startedAt = performance.timeOrigin;
  const { createServer } = await import("node:http");
  const server = createServer((req, res) => {
    const path = req.url?.split("?")[0];
    // HTTP probes: /live answers while the master's loop runs, /ready while the daemon is ready and not stopping.
    if (path === "/live") return void res.writeHead(200).end("live\n");
    if (path === "/ready") {
      return void (source.starting || source.stopping
        ? res.writeHead(503).end("not ready\n")
        : res.writeHead(200).end("ready\n"));
    }
    if (path !== "/metrics") return void res.writeHead(404).end("see /metrics, /ready, /live\n");
    res.writeHead(200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" }).end(
      exposition(stage.name, source, startedAt),
    );
  });
  const listen = () => server.listen(address.port, address.host);
  server.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EADDRINUSE" && host.exists(`${stage.pidFile}.oldbin`)) return void host.timer(1000, listen);
    fatal(
      new DaemonError("START_FAILED", `Cannot start: --metrics ${stage.metrics}: ${err.message}: pick a free port`),
    );
  });
  server.on("listening", () => {
    const bound = server.address();
    if (bound && typeof bound === "object") {
      runnerLog(
        `metrics on http://${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${bound.port}/metrics`,
      );
    }
  });
  listen();
  return server;
}
