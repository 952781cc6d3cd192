/**
 * From `events` rows to the events subscribers get, and which subscriber gets which: the one
 * mapping and the one filter, shared by the live hub (`hub.ts`) and the replay of a resumed stream
 * (`stream.ts`).
 */
import type { EventRow } from '../../store/queries/events.js';
import { toLogRecord } from '../jobs/records.js';
import type { EngineEvent, EventKind, JobEventData, TaskEventData } from './types.js';

/** What one subscriber wants to see. */
export interface EventFilter {
  /** Only events of this client's jobs; null: every client (admins only). */
  client: string | null;
  /** Only events of this job; null: every job. */
  jobId: number | null;
  /** Only these kinds. */
  kinds: ReadonlySet<EventKind>;
  /** Log lines with `visible: false` (DEBUG) too, as `GET /logs/<id>?show_all=1`. */
  showAll: boolean;
}

/**
 * Maps a row of `readEvents` to an event.
 * @returns null when the event cannot be shown any more: its job was deleted (no client), or its
 * log line was (the job's deletion took it along).
 */
export function toEngineEvent(row: EventRow): EngineEvent | null {
  const id = Number(row.id);
  const jobId = Number(row.job_id);
  const client = row.client;
  if (client === null) return null;
  switch (row.kind) {
    case 'job':
      return { id, kind: 'job', jobId, client, data: row.data as unknown as JobEventData };
    case 'task':
      return { id, kind: 'task', jobId, client, data: row.data as unknown as TaskEventData };
    case 'log':
      if (row.log_id === null) return null;
      return {
        id,
        kind: 'log',
        jobId,
        client,
        data: toLogRecord({
          id: row.log_id,
          job_id: jobId,
          severity: row.log_severity!,
          progname: row.log_progname!,
          message: row.log_message!,
          created_at: row.log_created_at!,
          updated_at: row.log_updated_at!,
          task_id: row.task_id,
          visible: row.log_visible!,
        }),
      };
    default:
      return null;
  }
}

/** Whether `event` passes `filter` (client, job, kind, and a hidden log line only with `showAll`). */
export function matchesFilter(filter: EventFilter, event: EngineEvent): boolean {
  if (!filter.kinds.has(event.kind)) return false;
  if (filter.client !== null && event.client !== filter.client) return false;
  if (filter.jobId !== null && event.jobId !== filter.jobId) return false;
  if (event.kind === 'log' && !filter.showAll && !event.data.visible) return false;
  return true;
}
