/**
 * The seed talk's pre-forking server, unchanged in spirit: every connection gets "Hello from PID <pid>".
 * Run it as 5 workers on one port:  daemonic run examples/seed.ts --daemon --workers 5 -- 8080
 */
import { createServer } from "node:net";

const port = Number(process.argv[2] ?? 8080);
createServer((connection) => {
  connection.on("error", () => {}); // a client that hangs up early is not our problem
  connection.end(`Hello from PID ${process.pid}\n`);
})
  .listen(port, "127.0.0.1", () => console.log(`listening on ${port}`));
