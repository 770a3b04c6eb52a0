/**
 * The bench's minimal HTTP entry, with no knowledge of daemonic: `bun scripts/bench-server.ts PORT`
 * (also `deno run -A scripts/bench-server.ts PORT`). Loopback only; answers every request with "ok".
 */
import { createServer } from "node:http";
import process from "node:process";

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) throw new Error(`usage: bench-server.ts PORT (got ${process.argv[2]})`);
createServer((_req, res) => res.end("ok\n")).listen(port, "127.0.0.1");
