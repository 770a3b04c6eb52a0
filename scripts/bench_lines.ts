/**
 * Log lines/s of one worker writing flat out with plain `process.stdout.write` (`daemonic run` under Bun),
 * with and without `--log-timestamps` (then the master reads the worker's pipe and stamps each line): from a
 * go signal to the last line in the log.
 *
 * @module
 */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readPid, record, runSync, sleep, start, stopPid, tail } from "./bench_proc.ts";

export const LOG_LINES = 1_000_000;

/** Lines per second, or why it could not be measured. */
export async function logLinesPerSecond(
  bun: string,
  daemonic: string,
  tmp: string,
  stamped: boolean,
): Promise<number | string> {
  const writer = join(tmp, "log-writer.ts"),
    log = join(tmp, `lines-${stamped}.log`),
    pidFile = join(tmp, `lines-${stamped}.pid`);
  const go = join(tmp, `lines-${stamped}.go`); // the writer starts once it exists, the clock with it
  writeFileSync(
    writer,
    `import { existsSync } from "node:fs";
let n = 0;
const burst = () => { let s = ""; for (let k = 0; k < 1000 && n < ${LOG_LINES}; k++) s += "line " + ++n + "\\n"; process.stdout.write(s); if (n < ${LOG_LINES}) setImmediate(burst); };
const wait = setInterval(() => existsSync(${JSON.stringify(go)}) && (clearInterval(wait), burst()), 1);
setInterval(() => {}, 1000);\n`,
  );
  const cmd = [bun, join(daemonic, "src", "cli.ts"), "run", writer];
  const l = start([
    ...cmd,
    "--daemon",
    "--workers",
    "1",
    ...(stamped ? ["--log-timestamps"] : []),
    "--pid-file",
    pidFile,
    "--log-file",
    log,
  ]);
  let pid: number | undefined;
  try {
    if (await l.proc.exited !== 0) throw new Error(`launcher failed: ${tail(l.stderr)}`);
    pid = await readPid(pidFile);
    record(pid);
    const t0 = performance.now();
    writeFileSync(go, "");
    const last = `line ${LOG_LINES}\n`;
    for (;;) {
      const file = Bun.file(log);
      if (existsSync(log) && (await file.slice(Math.max(0, file.size - 64)).text()).endsWith(last)) break;
      if (performance.now() - t0 > 120_000) throw new Error("the last line did not come within 120 s");
      await sleep(2);
    }
    return LOG_LINES / ((performance.now() - t0) / 1000);
  } catch (err) {
    return (err as Error).message;
  } finally {
    runSync([...cmd, "--stop", "--pid-file", pidFile]);
    if (pid) await stopPid(pid);
  }
}

/** The report's lines for both runs. */
export async function logLinesReport(bun: string, daemonic: string, tmp: string): Promise<string[]> {
  const plain = await logLinesPerSecond(bun, daemonic, tmp, false),
    stamped = await logLinesPerSecond(bun, daemonic, tmp, true);
  const show = (x: number | string) => typeof x === "number" ? `${(x / 1e6).toFixed(2)} M lines/s` : `failed: ${x}`;
  return [
    `### Log lines (${LOG_LINES} lines of one worker, plain stdout writes)`,
    "",
    "| | lines/s |",
    "| --- | ---: |",
    `| plain | ${show(plain)} |`,
    `| \`--log-timestamps\` | ${show(stamped)} |`,
    "",
  ];
}
