/**
 * How an option's text becomes its value (throwing a usage error, exit 64, that names the fix), and back:
 * the parsers the option table's rows use.
 *
 * @module
 */
import { resolvePath } from "../../ffi/_host.ts";
import { cgroupMemoryLimit, cpuWorkers } from "../cgroup.ts";
import { DaemonError } from "../errors.ts";

/** Throws the usage error (exit 64) `message`. */
export function fail(message: string): never {
  throw new DaemonError("USAGE", message);
}

/** Longest duration a flag takes: timers and poll() count milliseconds in 32 bits, which a day fits. */
const MAX_SECONDS = 86_400;

export const seconds = (least: 0 | 0.001) => (text: string, flag: string): number => {
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || n < least || n > MAX_SECONDS) {
    fail(`Invalid --${flag} '${text}': give seconds from ${least} to ${MAX_SECONDS}, e.g. --${flag} 10`);
  }
  return n;
};
export const whole = (max: number, hint: string) => (text: string, flag: string): number => {
  if (!/^\d+$/.test(text) || Number(text) > max) fail(`Invalid --${flag} '${text}': give a whole number ${hint}`);
  return Number(text);
};
export const path = (text: string, flag: string, baseDir: string): string => {
  if (!text.trim()) fail(`Invalid --${flag} '${text}': give a path, or leave the flag out for the default`);
  return resolvePath(baseDir, text);
};
export const accountName = (text: string, flag: string): string => {
  if (!/^[a-zA-Z_][\w.-]{0,31}\$?$/.test(text)) {
    fail(`Invalid --${flag} '${text}': give a user or group name such as www-data`);
  }
  return text;
};
export const octal = (mask: number) => mask.toString(8).padStart(3, "0");
export const size = (bytes: number) => {
  const [unit, unitName] = ([[1024 ** 3, "G"], [1024 ** 2, "M"]] as const).find(([b]) => bytes % b === 0) ??
    [1024, "K"];
  return `${bytes / unit}${unitName}`;
};

const UNITS: Record<string, number> = { K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

/**
 * Bytes in a size such as `300M` (K, M or G, powers of 1024), or `undefined` when it is not one.
 *
 * @example
 * ```ts
 * import { parseSize } from "./option_values.ts";
 * console.log(parseSize("300M"), parseSize("1g"), parseSize("300")); // 314572800 1073741824 undefined
 * ```
 */
export function parseSize(text: string): number | undefined {
  const m = /^(\d{1,7})([KMG])$/i.exec(text);
  return m && Number(m[1]) > 0 ? Number(m[1]) * UNITS[m[2].toUpperCase()] : undefined;
}

/** `--metrics`'s value: `PORT`, `HOST:PORT` or `[IPv6]:PORT`; `undefined` when it is not one. */
export function parseMetricsAddress(value: string): { host?: string; port: number } | undefined {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[\w.-]+):)?(\d{1,5})$/.exec(value);
  if (!m || Number(m[2]) > 65535) return undefined;
  return { host: m[1]?.replace(/^\[(.*)\]$/, "$1"), port: Number(m[2]) };
}

/** `--workers N`, or `auto`: the CPU limit of this process's cgroup (see cgroup.ts). */
export const workerCount = (text: string, flag: string): number =>
  text === "auto"
    ? Math.min(cpuWorkers().value, 1024)
    : whole(1024, "from 0 to 1024, or auto (the cgroup's CPU limit)")(text, flag);

/** `--max-memory SIZE`, or `PERCENT%` of this process's cgroup memory limit (see cgroup.ts). */
export function memoryLimit(text: string, flag: string): number {
  const percent = /^(\d{1,3}(\.\d{1,2})?)%$/.exec(text)?.[1];
  if (percent === undefined) {
    return parseSize(text) ?? fail(`Invalid --${flag} '${text}': give a size in K, M or G, e.g. --${flag} 300M`);
  }
  if (!(Number(percent) > 0 && Number(percent) <= 100)) {
    fail(`Invalid --${flag} '${text}': give a percentage above 0 and up to 100, e.g. --${flag} 80%`);
  }
  const limit = cgroupMemoryLimit() ??
    fail(
      `Invalid --${flag} '${text}': this process's cgroup sets no memory limit to take a percentage of: give a ` +
        `size, e.g. --${flag} 300M`,
    );
  return Math.floor(limit.value * Number(percent) / 100);
}

/** How `--workers auto` and `--max-memory PERCENT%` were decided, for `--status` (and the unit, which decides
 * again). */
export function decidedBy(flag: "workers" | "max-memory", text: string): Record<string, string> {
  if (flag === "workers") return text === "auto" ? { workersAuto: cpuWorkers().how } : {};
  const percent = /^([\d.]+)%$/.exec(text)?.[1];
  return percent ? { maxMemoryShare: `${percent}% of ${cgroupMemoryLimit()?.how}` } : {};
}
