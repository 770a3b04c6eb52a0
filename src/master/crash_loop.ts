/**
 * Crash-loop backoff of a master's worker slots, decided from evidence rather than age alone: a worker that
 * failed before it was ready, or that ended on its own (an exit, a fault) within 5 s of it, counts toward a crash
 * loop; one killed from outside once ready (an operator, the OOM killer, a deploy script) does not, so a
 * healthy entry is restarted at once however often it is killed. Backoff exists to keep a crash loop from
 * burning CPU, not to take a healthy service offline.
 *
 * @module
 */

/** A worker that ends on its own within this long of being ready counts as a crash, as one failing before. */
export const YOUNG_MS = 5000;
/** The longest wait between two starts of a crashing slot. */
export const MAX_DELAY_MS = 30_000;

/** Signals a process brings on itself (a fault, `abort()`): a crash, whoever delivered them. */
const SELF_INFLICTED = new Set([4, 5, 6, 7, 8, 11, 31]); // ILL TRAP ABRT BUS FPE SEGV SYS

/** One slot's crash streak: crashes in a row, and when it may be started again (ms since the epoch). */
export interface Backoff {
  crashes: number;
  retryAt: number;
}

/** How a worker ended, as the master saw it. */
export interface WorkerEnd {
  /** The wait status. */
  status: number;
  /** ms from its readiness to its exit; `undefined`: it never was ready. */
  readyFor?: number;
}

/**
 * The slot's backoff after an unplanned exit, from the one before (`prev`) and how the worker ended. The
 * first crash restarts at once; from the second in a row the wait doubles from 0.2 s up to 30 s.
 *
 * @example
 * ```ts
 * import { backoffAfter } from "./crash_loop.ts";
 * const now = 1000;
 * console.log(backoffAfter({ crashes: 3, retryAt: 0 }, { status: 9, readyFor: 900 }, now));
 * // { crashes: 3, retryAt: 1000 }: killed from outside
 * console.log(backoffAfter({ crashes: 1, retryAt: 0 }, { status: 1 << 8, readyFor: 900 }, now));
 * // { crashes: 2, retryAt: 1200 }
 * ```
 */
export function backoffAfter(prev: Backoff | undefined, end: WorkerEnd, now: number): Backoff {
  const before = prev?.crashes ?? 0, ready = end.readyFor !== undefined;
  if (ready && end.readyFor! >= YOUNG_MS) return { crashes: 0, retryAt: now }; // it served: the streak is over
  const signal = end.status & 0x7f;
  // no evidence either way
  if (ready && signal && !SELF_INFLICTED.has(signal)) return { crashes: before, retryAt: now };
  const crashes = before + 1;
  return { crashes, retryAt: now + (crashes <= 1 ? 0 : Math.min(MAX_DELAY_MS, 100 * 2 ** (crashes - 1))) };
}

/** A slot waiting out its backoff, as the worker table shows it to `--status`. */
export interface WaitingSlot {
  id: number;
  crashes: number;
  retryAt: number;
}

/** The slots among 1..`target` that hold no worker (but retiring ones) and wait out a backoff at `now`, soonest
 * first. */
export function waitingSlots(
  backoff: Map<number, Backoff>,
  target: number,
  workers: { id: number; retireBy?: number }[],
  now: number,
): WaitingSlot[] {
  const occupied = (id: number) => workers.some((w) => w.id === id && !w.retireBy);
  return [...backoff].filter(([id, b]) => id <= target && b.retryAt > now && !occupied(id))
    .map(([id, b]) => ({ id, crashes: b.crashes, retryAt: b.retryAt }))
    .sort((a, b) => a.retryAt - b.retryAt);
}
