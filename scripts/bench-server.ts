/**
 * The bench's minimal HTTP entry, with no knowledge of daemonic: `bun scripts/bench-server.ts PORT`
 * (also `deno run -A scripts/bench-server.ts PORT`). Loopback only; answers "ok", or on /work the result
 * of ~0.2 ms of arithmetic.
 */
import { createServer } from "node:http";
import process from "node:process";

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) throw new Error(`usage: bench-server.ts PORT (got ${process.argv[2]})`);
// /work spends ~0.2 ms of CPU per request, so the server, not wrk, is what runs out of CPU (worker scaling).
const work = () => {
  let x = 0;
  for (let i = 0; i < 200_000; i++) x = (x * 31 + i) | 0;
  return x;
};
createServer((req, res) => res.end(req.url === "/work" ? `${work()}\n` : "ok\n")).listen(port, "127.0.0.1");
