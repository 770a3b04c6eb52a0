/**
 * An entry whose default export has a `fetch` function (`export default { fetch }`, `export default app` of
 * Hono, Elysia, itty-router …) is served the way its runtime serves it when run bare: Bun as `bun run`
 * does (`Bun.serve` with the export's own options; no `port`: `PORT`, `BUN_PORT`, `NODE_PORT`, else 3000),
 * Deno as `deno serve` does (the export's `fetch` on `PORT`, else 8000).
 *
 * @module
 */
import { RUNTIME } from "./_runtime.ts";

/**
 * Serves `namespace.default` when it has a `fetch` function and is not a server already (a `Bun.serve`
 * result, or an app that already listens on its own, like Elysia after `.listen()`). Calls the global
 * `Bun.serve` / `Deno.serve` at call time, so a worker's port-sharing wrapper applies.
 *
 * @example
 * ```ts
 * import { serveDefaultExport } from "./default_export.ts";
 * serveDefaultExport({ default: { answer: 42 } }); // no fetch: nothing to serve, nothing happens
 * ```
 */
export function serveDefaultExport(namespace: unknown): void {
  const app = (namespace as { default?: Record<string, unknown> } | null)?.default;
  if (!app || typeof app.fetch !== "function") return;
  if (typeof app.requestIP === "function" || app.server) return;
  RUNTIME.serveExport(app as Parameters<typeof RUNTIME.serveExport>[0]);
}
