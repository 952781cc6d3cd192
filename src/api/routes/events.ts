/**
 * `GET /events`: Server-Sent Events of job, task and log changes (docs/events.md). The request is
 * read and checked like any other (400/403/404 as JSON); then the reply is taken over from Fastify
 * (`reply.hijack()`) and written as `text/event-stream` until the client goes, the engine stops, or
 * the client reads too slowly (it then reconnects with `Last-Event-ID`). The stream logic — the
 * subscription, the replay and the reset — is `src/engine/events/stream.ts`.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Clock, ClockTimer } from '../../engine/clock.js';
import type { EngineContext } from '../../engine/context.js';
import type { CloseReason } from '../../engine/events/hub.js';
import { assertEventJobVisible, parseEventsQuery } from '../../engine/events/query.js';
import {
  prepareEventStream,
  type EventStreamOutput,
  type ResetEventData,
} from '../../engine/events/stream.js';
import type { EngineEvent } from '../../engine/events/types.js';
import { repeatEvery } from '../../engine/workers/repeat.js';
import { viewerOf } from '../plugins/auth.js';
import { authErrors, errorSchema, describeOnly } from '../schemas.js';
import { parseShowAll } from './logs.js';

/** How long the client waits before reconnecting (the SSE `retry:` field), in ms. */
export const SSE_RETRY_MS = 2_000;
/** Period of the `: keep-alive` comment, in ms (keeps proxies from closing an idle stream). */
export const SSE_KEEP_ALIVE_MS = 15_000;

/** One SSE message: `id`, `event` and the JSON `data` on one line. */
function formatEvent(id: number, event: string, data: unknown): string {
  return `id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** The comment sent before a stream that the server closes, saying why. */
const CLOSE_COMMENTS: Record<CloseReason, string> = {
  slow: ': closed: the client read too slowly; reconnect with Last-Event-ID\n\n',
  stopped: ': closed: the engine is stopping; reconnect with Last-Event-ID\n\n',
};

/**
 * One stream's HTTP side: the response, its flow control and its keep-alive. It is created before
 * the reply is taken over (`pending`: the hub may already close it, which then happens at
 * {@link SseConnection.begin}), `open` while it streams, and `ended` once the response is over.
 */
class SseConnection implements EventStreamOutput {
  private state: 'pending' | 'open' | 'ended' = 'pending';
  private closeWhenBegun: string | null = null;
  private waiters: (() => void)[] = [];
  private keepAlive: ClockTimer | null = null;
  private readonly aborter = new AbortController();
  /** Called once when the stream ends, whoever ends it. */
  onEnd: (() => void) | null = null;

  constructor(
    private readonly res: ServerResponse,
    private readonly clock: Clock,
    private readonly open: Set<SseConnection>,
  ) {}

  /** Aborts when the stream ends (the client went, or the server ended it). */
  get gone(): AbortSignal {
    return this.aborter.signal;
  }

  /** Writes the head and the `retry:` field and starts the keep-alive. */
  begin(): void {
    const { res } = this;
    res.on('drain', () => this.wake());
    res.on('close', () => this.finish());
    res.on('error', () => this.finish());
    if (res.destroyed || !res.socket || res.socket.destroyed) {
      // The client went while the stream was being prepared: its 'close' has passed already.
      this.finish();
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    this.state = 'open';
    this.open.add(this);
    this.write(`retry: ${SSE_RETRY_MS}\n\n`);
    this.keepAlive = repeatEvery(this.clock, SSE_KEEP_ALIVE_MS, () => {
      this.write(': keep-alive\n\n');
    });
    if (this.closeWhenBegun !== null) this.end(this.closeWhenBegun);
  }

  send(event: EngineEvent): boolean {
    return this.write(formatEvent(event.id, event.kind, event.data));
  }

  reset(data: ResetEventData, resumeId: number): boolean {
    return this.write(formatEvent(resumeId, 'reset', data));
  }

  drained(): Promise<void> {
    if (this.state !== 'open') return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  closed(reason: CloseReason): void {
    this.end(CLOSE_COMMENTS[reason]);
  }

  /** Ends the response with a last comment `text` (idempotent). */
  end(text: string): void {
    if (this.state === 'pending') this.closeWhenBegun ??= text;
    if (this.state !== 'open') return;
    this.res.end(text);
    this.finish();
  }

  private write(text: string): boolean {
    return this.state === 'open' ? this.res.write(text) : true;
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const fn of waiters) fn();
  }

  private finish(): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    this.open.delete(this);
    this.keepAlive?.cancel();
    this.aborter.abort();
    this.wake();
    this.onEnd?.();
  }
}

/** Registers `GET /events`. Open streams are ended when the server closes. */
export function registerEventRoutes(app: FastifyInstance, ctx: EngineContext): void {
  /** The open streams, ended at close so the server can stop. */
  const open = new Set<SseConnection>();
  app.addHook('preClose', async () => {
    for (const c of [...open]) c.end(CLOSE_COMMENTS.stopped);
  });

  app.get(
    '/events',
    {
      ...describeOnly,
      // A HEAD request would hold a connection open with nothing to send.
      exposeHeadRoute: false,
      schema: {
        summary: 'Live job, task and log events (Server-Sent Events)',
        description:
          'A text/event-stream of `id: <event id>`, `event: job|task|log` and `data: <JSON>` messages, scoped to the caller\'s jobs (an admin sees every client, or one with `client`). `kinds` defaults to job,task (plus log with `job_id`; log lines are streamed for one job only). Resume with the `Last-Event-ID` header (or `last_event_id`): the missed events are replayed from the retained window (`event_retention` seconds), then the stream goes on live; when the id is older than the window the stream starts with `event: reset` (data `{"reason", "message", "oldest_id"}`): reload the state, then follow. See docs/events.md.',
        tags: ['events'],
        querystring: {
          type: 'object',
          properties: {
            job_id: { type: 'string', description: "only this job's events (a positive integer)" },
            kinds: {
              type: 'string',
              description: 'comma list of job, task, log; default job,task (and log with job_id)',
            },
            client: { type: 'string', description: "admin only: only this client's jobs" },
            last_event_id: {
              type: 'string',
              description: 'resume after this event id (the Last-Event-ID header wins)',
            },
            show_all: {
              type: 'string',
              enum: ['1', '0', 'true', 'false'],
              description: 'log lines with visible=false (DEBUG) too, as GET /logs/<id>',
            },
          },
        },
        headers: {
          type: 'object',
          properties: {
            'last-event-id': { type: 'string', description: 'resume after this event id' },
          },
        },
        response: {
          200: {
            description: 'the event stream (`retry: 2000` first, a `: keep-alive` comment every 15 s)',
            content: {
              'text/event-stream': {
                schema: {
                  type: 'string',
                  description:
                    'messages `id: 42\\nevent: job\\ndata: {"job_id": 7, "client": "acme", "workflow": "demo", "queue_state": "started", "failed": false, …}\\n\\n`',
                },
              },
            },
          },
          400: errorSchema,
          ...authErrors,
          404: errorSchema,
          503: errorSchema,
        },
      },
    },
    async (request, reply) => {
      const viewer = viewerOf(request);
      const query = request.query as Record<string, unknown>;
      const { filter, lastEventId } = parseEventsQuery(
        viewer,
        query,
        request.headers['last-event-id'],
        parseShowAll(query.show_all),
      );
      if (filter.jobId !== null) await assertEventJobVisible(ctx.db, viewer, filter.jobId);

      const connection = new SseConnection(reply.raw, ctx.clock, open);
      // Subscribing before anything is written: a refusal here is still a JSON error.
      const stream = await prepareEventStream(ctx, filter, lastEventId, connection);
      connection.onEnd = () => stream.subscription.close();
      reply.hijack();
      connection.begin();
      try {
        await stream.start(connection.gone);
      } catch (err) {
        request.log.warn({ err }, 'GET /events: the replay failed; closing the stream');
        connection.end(': closed: the replay failed; reconnect with Last-Event-ID\n\n');
      }
    },
  );
}
