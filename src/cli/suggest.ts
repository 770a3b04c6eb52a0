/**
 * "Did you mean": the known word nearest a mistyped one, by edit distance (a swap of two neighbours counts
 * as one edit, as in `--deamon`), or the only known word it begins.
 *
 * @module
 */

/** Optimal string alignment distance between `a` and `b`. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)] as number[]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/**
 * The word of `known` closest to `word`, if close enough to be what was meant (at most a third of its
 * letters off, and at least one), or the only one `word` is the beginning of.
 *
 * @example
 * ```ts
 * import { closest } from "./suggest.ts";
 * console.log(closest("deamon", ["daemon", "stop"])); // daemon
 * ```
 */
export function closest(word: string, known: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  const starting = known.filter((k) => w.length >= 3 && k.startsWith(w));
  if (starting.length === 1) return starting[0];
  const scored = known.map((k) => ({ k, d: distance(w, k) })).sort((a, b) => a.d - b.d);
  const best = scored[0];
  return best && best.d <= Math.max(1, Math.floor(w.length / 3)) ? best.k : undefined;
}
