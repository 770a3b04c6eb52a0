/**
 * Draining a retiring worker's HTTP servers so no client loses a request: the listeners close first (their
 * queued connections move to a sibling, see reuseport_migrate.ts), every request already received is
 * answered, each response sent meanwhile says `Connection: close` so keep-alive clients reconnect to a live
 * worker, and a connection is closed by us only after it stayed idle for {@linkcode IDLE_GRACE_MS}: a
 * connection that is reused at the moment we close it is what loses a keep-alive client's request. A request
 * pipelined behind a response marked `Connection: close` is the client's to resend (RFC 9112 §9.3.2): a
 * server that keeps answering the connection (Deno.serve does) is made to answer it only once the client,
 * which closes on reading that response (§9.6), is gone.
 *
 * @module
 */
import { host } from "../../ffi/_host.ts";
import { attachMigration, stopListening } from "./reuseport_migrate.ts";

/** How long a kept-alive connection may stay idle during a drain before we close it. */
export const IDLE_GRACE_MS = 1000;

type Handler = (request: Request, ...rest: unknown[]) => Response | Promise<Response>;
/** Names the TCP connection a request came on (`undefined` when unknown). */
type ConnectionOf = (request: Request, ...rest: unknown[]) => string | undefined;

/** The servers of one worker, and whether it is draining. */
export class Drain {
  private active = false;
  /** Connections sent a response marked `Connection: close` (when the server names them). */
  private readonly closed = new Set<string>();
  private readonly stops: ((idle: () => Promise<void>) => Promise<void>)[] = [];

  /** Registers how to stop one server: stop accepting at once, close idle connections once `idle()` resolves
   * (after the grace), resolve when its connections are closed. */
  onStop(stop: (idle: () => Promise<void>) => Promise<void>): void {
    this.stops.push(stop);
  }

  /** Wraps a `fetch`-style handler (Bun.serve, Deno.serve) so its responses say `Connection: close` during a
   * drain. With `connectionOf` (for a server that keeps answering a connection after such a response), a
   * request that comes after it on the same connection is answered only {@linkcode IDLE_GRACE_MS} later. */
  wrapHandler<H extends Handler>(handler: H, connectionOf?: ConnectionOf): H {
    const drain = this;
    return async function (this: unknown, request: Request, ...rest: unknown[]) {
      const connection = drain.active ? connectionOf?.(request, ...rest) : undefined;
      if (connection && drain.closed.has(connection)) {
        await host.sleep(IDLE_GRACE_MS);
      }
      const response = await handler.call(this, request, ...rest);
      // A 101 (Deno's upgradeWebSocket) is the start of a WebSocket, not a response to end with.
      if (!drain.active || !(response instanceof Response) || response.status === 101) return response;
      const closed = connection ?? connectionOf?.(request, ...rest); // the drain may have begun meanwhile
      if (closed) drain.closed.add(closed);
      return closing(response);
    } as H;
  }

  /** Makes a node:http server's responses say `Connection: close` during a drain (before the entry's handler runs). */
  watchNodeServer(
    server: { prependListener(event: "request", listener: (req: unknown, res: NodeResponse) => void): unknown },
  ): void {
    server.prependListener("request", (_req, res) => {
      if (this.active && !res.headersSent) res.setHeader("Connection", "close");
    });
  }

  /** Stops accepting, answers what was received, closes connections once idle; resolves when all are closed. */
  async run(): Promise<void> {
    this.active = true;
    attachMigration(); // again: a listener opened after the worker was ready has no program yet
    stopListening();
    const grace = host.sleep(IDLE_GRACE_MS);
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
