/**
 * The bench's Deno baseline entry: `deno run -A scripts/bench-server-deno.ts PORT`, a minimal `Deno.serve`
 * on loopback that answers "ok" (the Deno rows run this same file bare and under daemonic).
 */
const port = Number(Deno.args[0]);
if (!Number.isInteger(port) || port <= 0) throw new Error(`usage: bench-server-deno.ts PORT (got ${Deno.args[0]})`);
export {};
Deno.serve({ port, hostname: "127.0.0.1", onListen() {} }, () => new Response("ok\n"));
