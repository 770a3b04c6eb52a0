/**
 * A plain HTTP server with no knowledge of daemonic: `daemonic run examples/hello.ts -- 8080`.
 * Answers every request with "Hello from PID <pid>".
 */
import { createServer } from "node:http";

const port = Number(process.argv[2] ?? 8080);
const server = createServer((_req, res) => res.end(`Hello from PID ${process.pid}\n`));
server.listen(port, "127.0.0.1", () => console.log(`listening on ${port}`));
