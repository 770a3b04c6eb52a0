/**
 * How an option's text becomes its value (throwing a usage error, exit 64, that names the fix), and back:
 * the parsers the option table's rows use.
 *
 * @module
 */
import { resolve } from "node:path";
import { DaemonError } from "./errors.ts";

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
  return resolve(baseDir, text);
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
