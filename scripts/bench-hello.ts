/**
 * The bench's leanest entry, with no knowledge of daemonic: a `Bun.serve` hello server on loopback,
 * `bun scripts/bench-hello.ts PORT`. Its own start costs next to nothing (no node:http), so what daemonic
 * adds shows unhidden.
 */
const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) throw new Error(`usage: bench-hello.ts PORT (got ${process.argv[2]})`);
export {};
Bun.serve({ port, hostname: "127.0.0.1", fetch: () => new Response("ok\n") });
