/** Words for callback deliveries in job logs. */
import type { ClaimedDeliveryRow } from '../../store/queries/callbacks.js';
import { redactUrl } from './redact-url.js';

/**
 * "callback 'complete' of task 'encode' to https://host/path" — the URL without credentials or
 * query; ` (job end)` after the event for the job-end callback.
 */
export function describeCallback(
  row: Pick<ClaimedDeliveryRow, 'body' | 'kind' | 'event' | 'target_url'>,
): string {
  const task = typeof row.body.task_name === 'string' ? ` of task '${row.body.task_name}'` : '';
  const kind = row.kind === 'job' ? ' (job end)' : '';
  return `callback '${row.event}'${task}${kind} to ${redactUrl(row.target_url)}`;
}

/** Milliseconds as seconds for a log line: `1 s`, `2.5 s`. */
export function formatSeconds(ms: number): string {
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}
