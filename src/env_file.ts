/**
 * `--env-file`: the `.env` format Bun and Deno read (`KEY=value`, `export KEY=value`, single, double and
 * backtick quotes, `#` comments, `\n` escapes and line breaks inside double quotes), read at start and again
 * for every new worker and on every reload, so an edited file takes effect on `--reload`. Later files win;
 * the file's values win over the environment the daemon was started with. No `$VAR` expansion.
 *
 * @module
 */
import { host } from "../ffi/_host.ts";
import { DaemonError } from "./errors.ts";

const ESCAPES: Record<string, string> = { n: "\n", r: "\r", t: "\t" };

/** Where the quote closing `body` is (a backslash escapes the next character in double quotes), or -1. */
function closingQuote(body: string, quote: string): number {
  for (let i = 0; i < body.length; i++) {
    if (body[i] === "\\" && quote === '"') i++;
    else if (body[i] === quote) return i;
  }
  return -1;
}

/**
 * Parses `.env` text into variables; throws an `Error` naming the line that is not `KEY=value`.
 *
 * @example
 * ```ts
 * import { parseEnv } from "./env_file.ts";
 * console.log(parseEnv('# db\nexport HOST=db1 # primary\nGREETING="hello\\nworld"\nRAW=\'$x\'\n'));
 * // { HOST: "db1", GREETING: "hello\nworld", RAW: "$x" }
 * ```
 */
export function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line || line.startsWith("#")) continue;
    const m = /^(?:export\s+)?([A-Za-z_][\w.-]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new Error(`line ${i + 1} is not KEY=value`);
    const [, key, rest] = m;
    const quote = rest[0];
    if (quote !== '"' && quote !== "'" && quote !== "`") {
      env[key] = rest.replace(/(^|\s+)#.*$/, "").trim();
      continue;
    }
    const first = i;
    let body = rest.slice(1);
    let end = closingQuote(body, quote);
    while (end < 0 && i + 1 < lines.length) {
      body += "\n" + lines[++i];
      end = closingQuote(body, quote);
    }
    if (end < 0) throw new Error(`line ${first + 1}: the ${quote} quote is never closed`);
    if (!/^\s*(#.*)?$/.test(body.slice(end + 1))) {
      throw new Error(`line ${i + 1}: text after the closing ${quote} quote`);
    }
    const value = body.slice(0, end);
    env[key] = quote === '"' ? value.replace(/\\(.)/g, (_, c: string) => ESCAPES[c] ?? c) : value;
  }
  return env;
}

/**
 * Reads and merges `paths` in order (a later file wins). Throws a {@linkcode DaemonError} `NO_INPUT`
 * (exit 66) naming the file, and the line, that cannot be used.
 *
 * @example
 * ```ts
 * import { readEnvFiles } from "./env_file.ts";
 * import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
 * const dir = mkdtempSync("/tmp/daemonic-doc-");
 * writeFileSync(`${dir}/app.env`, "PORT=8080\n");
 * console.log(readEnvFiles([`${dir}/app.env`])); // { PORT: "8080" }
 * rmSync(dir, { recursive: true });
 * ```
 */
export function readEnvFiles(paths: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const path of paths) {
    let text: string;
    try {
      text = host.readText(path);
    } catch (err) {
      const code = (err as { code?: string }).code;
      const why = code === "ENOENT"
        ? "no such file"
        : code === "EACCES"
        ? "permission denied"
        : code === "EISDIR"
        ? "it is a directory"
        : (err as Error).message;
      throw new DaemonError("NO_INPUT", `Cannot read --env-file ${path}: ${why}: create it, or drop the flag`);
    }
    try {
      Object.assign(env, parseEnv(text));
    } catch (err) {
      throw new DaemonError(
        "NO_INPUT",
        `Invalid --env-file ${path}: ${(err as Error).message}: write KEY=value, # for comments`,
      );
    }
  }
  return env;
}

/** The values the applied files replaced, to restore a variable a later version of the file drops. */
const replaced = new Map<string, string | undefined>();

/**
 * Reads `paths` and puts their variables into `env` (this process's environment): at start, and again on a
 * reload, when a variable dropped from the files gets back the value it had before. Throws as
 * {@linkcode readEnvFiles} does, changing nothing.
 *
 * @example
 * ```ts
 * import { applyEnvFiles } from "./env_file.ts";
 * import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
 * const dir = mkdtempSync("/tmp/daemonic-doc-");
 * writeFileSync(`${dir}/app.env`, "GREETING=hi\n");
 * const env: Record<string, string | undefined> = {};
 * applyEnvFiles([`${dir}/app.env`], env);
 * console.log(env.GREETING); // hi
 * rmSync(dir, { recursive: true });
 * ```
 */
export function applyEnvFiles(paths: readonly string[], env: Record<string, string | undefined> = host.environ): void {
  const values = readEnvFiles(paths);
  for (const [key, original] of replaced) {
    if (key in values) continue;
    if (original === undefined) delete env[key];
    else env[key] = original;
    replaced.delete(key);
  }
  for (const [key, value] of Object.entries(values)) {
    if (!replaced.has(key)) replaced.set(key, env[key]);
    env[key] = value;
  }
}

/**
 * {@linkcode applyEnvFiles} now (throwing as it does), and again on every SIGHUP before the entry's onReload
 * hooks run (listeners run in the order added: call it before `handleSignals`). A file that cannot be read
 * on a reload is logged, and the variables keep their values.
 *
 * @example
 * ```ts ignore
 * // ignore: it adds a SIGHUP listener to this process
 * import { watchEnvFiles } from "./env_file.ts";
 * import { runnerLog } from "./log/lines.ts";
 * watchEnvFiles(["/etc/app.env"], runnerLog);
 * ```
 */
export function watchEnvFiles(paths: readonly string[], log: (line: string, level?: "info" | "error") => void): void {
  if (paths.length === 0) return;
  applyEnvFiles(paths);
  host.onSignal("SIGHUP", () => {
    try {
      applyEnvFiles(paths);
      log(`SIGHUP: read ${paths.join(", ")} again`);
    } catch (err) {
      log(`SIGHUP: ${(err as Error).message}; the environment keeps its values`, "error");
    }
  });
}
