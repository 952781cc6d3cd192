/**
 * Reading a `GET /events` request: its query string and its `Last-Event-ID` header, and what the
 * viewer may see.
 */
import { EngineError } from '../../errors/catalogue.js';
import type { Queryable } from '../../store/executor.js';
import { findVisibleJob, type Viewer } from '../jobs/records.js';
import type { EventFilter } from './records.js';
import { EVENT_KINDS, type EventKind } from './types.js';

/** The query parameters `GET /events` accepts. */
export const EVENTS_QUERY_FIELDS = ['job_id', 'kinds', 'client', 'last_event_id', 'show_all'] as const;

/** A `GET /events` request, read. */
export interface EventsRequest {
  filter: EventFilter;
  /** Resume after this id (the `Last-Event-ID` header, else `last_event_id`); null: live only. */
  lastEventId: number | null;
}

function single(query: Record<string, unknown>, name: string): unknown {
  const v = query[name];
  if (Array.isArray(v)) {
    if (v.length === 1) return v[0];
    throw new EngineError('VALIDATION_FAILED', `${name} was given ${v.length} times; give it once`);
  }
  return v === '' ? undefined : v;
}

/**
 * Reads an event id: a whole number from 0 (0 replays everything retained).
 * @throws {EngineError} `VALIDATION_FAILED` naming `field`.
 */
function parseEventId(field: string, value: unknown): number {
  const text = typeof value === 'string' ? value.trim() : '';
  if (/^\d{1,16}$/.test(text) && Number.isSafeInteger(Number(text))) return Number(text);
  throw new EngineError(
    'VALIDATION_FAILED',
    `${field} must be the id of an event received before (a whole number from 0); got ${JSON.stringify(value)}`,
  );
}

/**
 * Reads the query of `GET /events` and the `Last-Event-ID` header (which wins over
 * `last_event_id`: a browser's EventSource sends it on every reconnect, with the URL it first used).
 * @param showAll - the `show_all` flag, already read as `GET /logs/<id>` reads it.
 * @throws {EngineError} `VALIDATION_FAILED` (400) for an unknown parameter or a bad value, saying
 * what is accepted; `FORBIDDEN` (403) when a non-admin asks for another client.
 */
export function parseEventsQuery(
  viewer: Viewer,
  query: Record<string, unknown>,
  lastEventIdHeader: unknown,
  showAll: boolean,
): EventsRequest {
  const unknown = Object.keys(query).filter((k) => !(EVENTS_QUERY_FIELDS as readonly string[]).includes(k));
  if (unknown.length > 0)
    throw new EngineError(
      'VALIDATION_FAILED',
      `unknown query parameter${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')}; accepted: ${EVENTS_QUERY_FIELDS.join(', ')}`,
    );
  let jobId: number | null = null;
  const jobText = single(query, 'job_id');
  if (jobText !== undefined) {
    const text = typeof jobText === 'string' ? jobText.trim() : '';
    if (!/^\d{1,16}$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text)))
      throw new EngineError(
        'VALIDATION_FAILED',
        `job_id must be a job id (a positive whole number); got ${JSON.stringify(jobText)}`,
      );
    jobId = Number(text);
  }

  let kinds: Set<EventKind>;
  const kindsText = single(query, 'kinds');
  if (kindsText === undefined) kinds = new Set(jobId === null ? ['job', 'task'] : ['job', 'task', 'log']);
  else {
    const accepted = `kinds must be a comma list of ${EVENT_KINDS.join(', ')} (log only with job_id)`;
    const parts = (typeof kindsText === 'string' ? kindsText : '').split(',').map((p) => p.trim());
    const bad = parts.filter((p) => !(EVENT_KINDS as readonly string[]).includes(p));
    if (bad.length > 0)
      throw new EngineError(
        'VALIDATION_FAILED',
        `${accepted}; got ${bad.map((b) => JSON.stringify(b)).join(', ')}`,
      );
    kinds = new Set(parts as EventKind[]);
    if (kinds.has('log') && jobId === null)
      throw new EngineError(
        'VALIDATION_FAILED',
        'log lines are streamed for one job only: give job_id=<id> with kinds=log, or leave log out',
      );
  }

  let client: string | null = viewer.admin ? null : viewer.client;
  const clientText = single(query, 'client');
  if (clientText !== undefined) {
    if (typeof clientText !== 'string')
      throw new EngineError('VALIDATION_FAILED', 'client must be a client name');
    if (!viewer.admin && clientText !== viewer.client)
      throw new EngineError(
        'FORBIDDEN',
        `the client filter is for admins; client "${viewer.client}" sees only its own jobs' events`,
      );
    client = clientText;
  }

  let lastEventId: number | null = null;
  const header = typeof lastEventIdHeader === 'string' ? lastEventIdHeader.trim() : '';
  if (header !== '') lastEventId = parseEventId('the Last-Event-ID header', header);
  else {
    const fromQuery = single(query, 'last_event_id');
    if (fromQuery !== undefined) lastEventId = parseEventId('last_event_id', fromQuery);
  }
  return { filter: { client, jobId, kinds, showAll }, lastEventId };
}

/**
 * Checks that the job a stream is for is visible to the viewer.
 * @throws {EngineError} `JOB_NOT_FOUND` (404) as `GET /jobs/<id>` does.
 */
export async function assertEventJobVisible(q: Queryable, viewer: Viewer, jobId: number): Promise<void> {
  await findVisibleJob(q, viewer, jobId);
}
