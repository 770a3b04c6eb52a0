#!/usr/bin/env bun
/**
 * A/B of daemonic builds, to measure one cut at a time: `--daemon` (and foreground) time to ready of each given
 * binary of scripts/bench-server.ts, round-robin with the bare compiled entry, so load from elsewhere hits
 * all alike. Build each variant with `bun src/cli.ts build scripts/bench-server.ts -o PATH` from its checkout.
 *
 *   bun scripts/bench_ab.ts [--runs N] [--entry FILE] BIN_A BIN_B …
 *
 * --entry: the entry the binaries were built from (default scripts/bench-server.ts), compiled bare as the baseline.
 *
 * @module
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type Case, daemonRun, foregroundRun, measureAll, med } from "./bench_cases.ts";
import { killOnExit, lastInt, median, runSync, start } from "./bench_proc.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values, positionals } = parseArgs({
  options: { runs: { type: "string" }, entry: { type: "string" } },
  allowPositionals: true,
});
if (positionals.length === 0) {
  console.error("usage: bun scripts/bench_ab.ts [--runs N] BIN_A BIN_B …");
  process.exit(64);
}
const runs = Math.max(1, Number(values.runs ?? 21));
const tmp = mkdtempSync(join(tmpdir(), "daemonic-ab-"));
killOnExit(() => rmSync(tmp, { recursive: true, force: true }));

const bare = join(tmp, "bare");
const built = runSync([
  process.execPath,
  "build",
  "--compile",
  "--minify",
  "--splitting",
  "--bytecode",
  "--format",
  "esm",
  resolve(values.entry ?? join(ROOT, "scripts", "bench-server.ts")),
  "--outfile",
  bare,
], ROOT);
if (built.status !== 0) {
  console.error(`cannot build the bare entry: ${built.stderr}`);
  process.exit(1);
}

const cases: Case[] = [{
  name: "bare compiled entry, foreground",
  samples: [],
  run: (port) => foregroundRun([bare, String(port)], port),
}];
positionals.forEach((path, n) => {
  const bin = resolve(path);
  cases.push({
    name: `${path} foreground`,
    samples: [],
    run: (port) => foregroundRun([bin, "--", String(port)], port),
  });
  cases.push({
    name: `${path} --daemon`,
    samples: [],
    run: (port, i) => {
      const pidFile = join(tmp, `${n}-${i}.pid`);
      return daemonRun(
        [bin, "--daemon", "--pid-file", pidFile, "--", String(port)],
        port,
        async (s) => lastInt(s.stdout),
        async () => {
          const stop = start([bin, "--stop", "--pid-file", pidFile]);
          return { ok: await stop.proc.exited === 0 };
        },
      );
    },
  });
});
await measureAll(cases, runs);
const base = med(cases[0], "ready");
console.log(
  `| case | ready ms (median of ${runs}) | × bare | launcher exits ms | stop ms | private MiB (daemon or supervisor, entry) |\n| --- | ---: | ---: | ---: | ---: | ---: |`,
);
for (const c of cases) {
  const r = med(c, "ready"), l = med(c, "launcher");
  const priv = (key: "mem" | "childMem") => {
    const xs = c.samples.map((s) => s[key]?.priv).filter((x): x is number => x !== undefined);
    return xs.length ? (median(xs) / 1048576).toFixed(2) : "–";
  };
  console.log(
    `| ${c.name} | ${c.error ? `failed: ${c.error}` : r?.toFixed(2)} | ${r && base ? (r / base).toFixed(2) : "–"}× | ${
      l?.toFixed(2) ?? "–"
    } | ${med(c, "stop")?.toFixed(1) ?? "–"} | ${priv("mem")}, ${priv("childMem")} |`,
  );
}
