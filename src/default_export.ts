/**
 * An entry whose default export has a `fetch` function (`export default { fetch }`, `export default app` of
 * Hono, Elysia, itty-router …) is served the way its runtime serves it when run bare: Bun as `bun run`
 * does (`Bun.serve` with the export's own options; no `port`: `PORT`, `BUN_PORT`, `NODE_PORT`, else 3000),
 * Deno as `deno serve` does (the export's `fetch` on `PORT`, else 8000).
 *
 * @module
 */
import process from "node:process";
import { runtime } from "./_runtime.ts";

type Handler = (...args: unknown[]) => unknown;
type Served = Record<string, unknown> & { fetch: Handler };

// Bun.serve options an export may carry; read one by one, so an app object's getters and prototype count.
const BUN_OPTIONS = [
  "port", "hostname", "unix", "development", "websocket", "tls", "static", "maxRequestBodySize", "idleTimeout",
  "ipv6Only", "reusePort", "id",
] as const;

function bunOptions(app: Served): Record<string, unknown> {
  const options: Record<string, unknown> = { fetch: app.fetch.bind(app) };
  for (const key of BUN_OPTIONS) if (app[key] !== undefined) options[key] = app[key];
  // An app's own `routes` (Hono's, Elysia's) is a list of its routes, not Bun's routes table.
  if (app.routes && typeof app.routes === "object" && !Array.isArray(app.routes)) options.routes = app.routes;
  if (typeof app.error === "function") options.error = (app.error as Handler).bind(app);
  return options;
}

function denoOptions(app: Served): Record<string, unknown> {
  const port = process.env.PORT ? Number(process.env.PORT) : 8000;
  const options: Record<string, unknown> = { port };
  if (typeof app.onListen === "function") options.onListen = (app.onListen as Handler).bind(app);
  return options;
}

/**
 * Serves `namespace.default` when it has a `fetch` function and is not a server already (a `Bun.serve`
 * result, or an app that already listens on its own, like Elysia after `.listen()`). Calls the global
 * `Bun.serve` / `Deno.serve` at call time, so a worker's port-sharing wrapper applies.
 */
export function serveDefaultExport(namespace: unknown): void {
  const app = (namespace as { default?: Served } | null)?.default;
  if (!app || typeof app.fetch !== "function") return;
  if (typeof app.requestIP === "function" || app.server) return;
  const g = globalThis as unknown as Record<string, Record<string, Handler>>;
  if (runtime === "bun") g.Bun.serve(bunOptions(app));
  else g.Deno.serve(denoOptions(app), app.fetch.bind(app));
}
