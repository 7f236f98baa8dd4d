/**
 * The live feed's WebSocket side: admitting viewers on `/v1/runs/:run/live` (token, path, event
 * types, the client bound) and sending them events under the per-client memory bound. It knows
 * nothing of commits or weights; `live.ts` decides what to send and when.
 *
 * Memory stays bounded per client: each event is serialised once and shared; a client whose send
 * buffer holds more than `maxBufferedBytes` is skipped (counted), and one that stays over it for
 * `maxBehindMs` is disconnected (counted). Nothing is queued per client beyond the socket buffer.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, WebSocket } from 'ws';
import { MotiveError, httpToken, type Authorizer, type ErrorCode, type Logger } from '../shared/index.js';
import { LIVE_EVENT_TYPES, parseTypes, type LiveEvent, type LiveEventBody, type LiveEventType, type LiveFeedStats } from './live-events.js';

/** One connected viewer. */
export interface LiveClient {
  readonly ws: WebSocket;
  readonly runId: string;
  readonly types: ReadonlySet<LiveEventType>;
  /** When the client's buffer first went over the limit (ms, Date.now), undefined when under. */
  overSinceMs: number | undefined;
}

export interface LiveTransportOptions {
  readonly maxBufferedBytes: number;
  readonly maxBehindMs: number;
  readonly maxClients: number;
}

/** Reason phrases of the upgrade refusals: fixed text, never built from the request. */
const REASONS: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  503: 'Service Unavailable',
};

interface Refusal {
  readonly status: number;
  readonly code: ErrorCode;
  readonly message: string;
}

function refusal(status: number, code: ErrorCode, detail?: string): Refusal {
  return { status, code, message: new MotiveError(code, detail).message };
}

const LIVE_PATH = /^\/v1\/runs\/([^/?]+)\/live$/;

/** The event `type` of run `runId` with its body, stamped now, as one JSON message. */
export function liveMessage<T extends LiveEvent['type']>(type: T, runId: string, body: LiveEventBody<T>): string {
  return JSON.stringify({ type, run: runId, t: Date.now(), ...body });
}

/** The viewers of every run and the sending to them. */
export class LiveTransport {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 4096, perMessageDeflate: false });
  private readonly clients = new Set<LiveClient>();
  private readonly sentByType: Record<string, number> = Object.fromEntries(LIVE_EVENT_TYPES.map((t) => [t, 0]));
  private skipped = 0;
  private dropped = 0;
  private closed = false;

  private readonly o: LiveTransportOptions;
  private readonly log: Logger;
  private readonly auth: Authorizer | undefined;
  private readonly onConnect: (client: LiveClient) => void;

  /** `onConnect` runs once a viewer is admitted, to send it its `hello` and what it starts with. */
  constructor(o: LiveTransportOptions, log: Logger, auth: Authorizer | undefined, onConnect: (client: LiveClient) => void) {
    this.o = o;
    this.log = log;
    this.auth = auth;
    this.onConnect = onConnect;
  }

  /** Counters for metrics. */
  stats(): LiveFeedStats {
    return { clients: this.clients.size, sent: { ...this.sentByType }, skipped: this.skipped, dropped: this.dropped };
  }

  /** Bytes waiting to be sent, per connected client. */
  bufferedBytes(): number[] {
    return [...this.clients].map((c) => c.ws.bufferedAmount);
  }

  /** Handles an HTTP upgrade request: a viewer admitted, or the refusal written to the socket. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const admitted = this.admit(req);
    if ('status' in admitted) {
      // The status line and headers are fixed text; what the request said goes only into the
      // JSON body, escaped, and only once the token has been checked.
      const body = JSON.stringify({ code: admitted.code, message: admitted.message });
      socket.end(
        `HTTP/1.1 ${admitted.status} ${REASONS[admitted.status]}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.connected(ws, admitted.runId, admitted.types);
    });
  }

  /**
   * Decides on an upgrade request: the run and event types, or the refusal. The token is checked
   * before anything else of the request is read, so a stranger learns nothing from the answers.
   */
  private admit(req: IncomingMessage): { runId: string; types: Set<LiveEventType> } | Refusal {
    const raw = req.url ?? '/';
    const auth = this.auth;
    const token = httpToken(req.headers, raw);
    if (auth !== undefined && auth.enabled && auth.identify(token) === undefined) return refusal(401, 'MOTIVE_API_UNAUTHENTICATED');
    let url: URL;
    try {
      url = new URL(raw, 'http://localhost');
    } catch {
      return refusal(400, 'MOTIVE_API_BAD_REQUEST', 'malformed URL');
    }
    const match = LIVE_PATH.exec(url.pathname);
    if (match === null) return refusal(404, 'MOTIVE_API_NOT_FOUND', 'no WebSocket route at this path');
    let runId: string;
    try {
      runId = decodeURIComponent(match[1]!);
    } catch {
      return refusal(400, 'MOTIVE_API_BAD_REQUEST', 'malformed run id escape');
    }
    const verdict = auth?.check(token, 'read', runId);
    if (verdict?.ok === false)
      return refusal(
        verdict.reason === 'unauthenticated' ? 401 : 403,
        verdict.reason === 'unauthenticated' ? 'MOTIVE_API_UNAUTHENTICATED' : 'MOTIVE_API_FORBIDDEN',
      );
    if (this.closed) return refusal(503, 'MOTIVE_INGEST_SHUTTING_DOWN');
    if (this.clients.size >= this.o.maxClients) return refusal(503, 'MOTIVE_API_TOO_MANY_CLIENTS', `at most ${this.o.maxClients}`);
    try {
      return { types: parseTypes(url.searchParams.get('types')), runId };
    } catch (err) {
      return refusal(400, 'MOTIVE_API_BAD_REQUEST', (err as Error).message);
    }
  }

  private connected(ws: WebSocket, runId: string, types: ReadonlySet<LiveEventType>): void {
    const client: LiveClient = { ws, runId, types, overSinceMs: undefined };
    this.clients.add(client);
    ws.on('close', () => this.clients.delete(client));
    ws.on('error', () => this.clients.delete(client));
    // Clients only listen; anything they send is ignored (maxPayload bounds it).
    this.onConnect(client);
  }

  /** Whether some viewer of `runId` asked for `type`. */
  hasSubscribers(runId: string, type: LiveEventType): boolean {
    for (const c of this.clients) if (c.runId === runId && c.types.has(type)) return true;
    return false;
  }

  /** Whether `runId` has a viewer at all. */
  hasAnyClient(runId: string): boolean {
    for (const c of this.clients) if (c.runId === runId) return true;
    return false;
  }

  /** Sends one event to every client of `runId` that asked for `type`. `make` runs only when someone listens. */
  publish<T extends LiveEventType>(runId: string, type: T, make: () => LiveEventBody<T>): void {
    if (!this.hasSubscribers(runId, type)) return;
    const payload = liveMessage(type, runId, make());
    for (const c of this.clients) if (c.runId === runId && c.types.has(type)) this.sendTo(c, type, payload);
  }

  /** Sends one serialised event to one client, under the memory bound. */
  sendTo(c: LiveClient, type: string, payload: string): void {
    if (c.ws.readyState !== WebSocket.OPEN) return;
    const now = Date.now();
    if (c.ws.bufferedAmount > this.o.maxBufferedBytes) {
      this.skipped++;
      c.overSinceMs ??= now;
      if (now - c.overSinceMs >= this.o.maxBehindMs) {
        this.dropped++;
        this.clients.delete(c);
        this.log.warn({ runId: c.runId, bufferedBytes: c.ws.bufferedAmount }, 'live client too slow, disconnected');
        c.ws.terminate();
      }
      return;
    }
    c.overSinceMs = undefined;
    c.ws.send(payload);
    this.sentByType[type] = (this.sentByType[type] ?? 0) + 1;
  }

  /** Disconnects every client and refuses new ones. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.clients) c.ws.terminate();
    this.clients.clear();
    this.wss.close();
  }
}
