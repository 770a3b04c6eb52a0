/**
 * Draining a retiring worker's HTTP servers so no client loses a request: the listeners close first (their
 * queued connections move to a sibling, see reuseport_migrate.ts), every request already received is
 * answered, each response sent meanwhile says `Connection: close` so keep-alive clients reconnect to a live
 * worker, and a connection is closed by us only after it stayed idle for {@linkcode IDLE_GRACE_MS}: a
 * connection that is reused at the moment we close it is what loses a keep-alive client's request.
 *
 * @module
 */
import { attachMigration, stopListening } from "./reuseport_migrate.ts";

/** How long a kept-alive connection may stay idle during a drain before we close it. */
export const IDLE_GRACE_MS = 1000;

type Handler = (request: Request, ...rest: unknown[]) => Response | Promise<Response>;

/** The servers of one worker, and whether it is draining. */
export class Drain {
  private active = false;
  private readonly stops: ((idle: () => Promise<void>) => Promise<void>)[] = [];

  /** Whether the worker is retiring: responses from now on close their connection. */
  get draining(): boolean {
    return this.active;
  }

  /** Registers how to stop one server: stop accepting at once, close idle connections once `idle()` resolves
   * (after the grace), resolve when its connections are closed. */
  onStop(stop: (idle: () => Promise<void>) => Promise<void>): void {
    this.stops.push(stop);
  }

  /** Wraps a `fetch`-style handler (Bun.serve, Deno.serve) so its responses say `Connection: close` during a drain. */
  wrapHandler<H extends Handler>(handler: H): H {
    const drain = this;
    return async function (this: unknown, request: Request, ...rest: unknown[]) {
      const response = await handler.call(this, request, ...rest);
      // A 101 (Deno's upgradeWebSocket) is the start of a WebSocket, not a response to end with.
      return drain.active && response instanceof Response && response.status !== 101 ? closing(response) : response;
    } as H;
  }

  /** Makes a node:http server's responses say `Connection: close` during a drain (before the entry's handler runs). */
  watchNodeServer(server: { prependListener(event: "request", listener: (req: unknown, res: NodeResponse) => void): unknown }): void {
    server.prependListener("request", (_req, res) => {
      if (this.active && !res.headersSent) res.setHeader("Connection", "close");
    });
  }

  /** Stops accepting, answers what was received, closes connections once idle; resolves when all are closed. */
  async run(): Promise<void> {
    this.active = true;
    attachMigration(); // again: a listener opened after the worker was ready has no program yet
    stopListening();
    const grace = new Promise<void>((resolve) => setTimeout(resolve, IDLE_GRACE_MS));
    await Promise.all(this.stops.map((stop) => stop(() => grace)));
  }
}

interface NodeResponse {
  headersSent: boolean;
  setHeader(name: string, value: string): unknown;
}

function closing(response: Response): Response {
  try {
    response.headers.set("Connection", "close");
    return response;
  } catch {
    // Immutable headers (Response.redirect, a fetched response): copy them.
    const headers = new Headers(response.headers);
    headers.set("Connection", "close");
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
  }
}
