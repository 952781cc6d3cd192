/**
 * Statements of the event log that feeds `GET /events` (the `events` table of migration 0009,
 * filled by triggers on jobs, tasks and logs): reading events after an id, the retained window,
 * and the retention sweep. Every time in them is a `$now`-derived parameter, never SQL `now()`.
 */
import { defineQuery } from './define-query.js';

/** An `events` row as the readers see it, with its job's client and, for `log`, the log row. */
export interface EventRow {
  id: number;
  job_id: number;
  kind: 'job' | 'task' | 'log';
  task_id: number;
  /** For `job` and `task`: the row's state at the change (the trigger's JSON); null for `log`. */
  data: Record<string, unknown> | null;
  /** The job's client; null when the job has been deleted since. */
  client: string | null;
  /** For `log`: the logs row's columns (null when the row is gone, or for other kinds). */
  log_id: number | null;
  log_severity: number | null;
  log_progname: string | null;
  log_message: string | null;
  log_created_at: Date | null;
  log_updated_at: Date | null;
  log_visible: boolean | null;
}

/** Parameters of {@link readEvents}. */
export interface ReadEventsParams {
  /** Events with an id greater than this. */
  after: number;
  /** …and at most this (null: no upper bound). */
  upTo: number | null;
  /** Only events of this client's jobs (null: every client). */
  client: string | null;
  /** Only events of this job (null: every job). */
  jobId: number | null;
  /** Only these kinds. */
  kinds: string[];
  /** At most this many rows. */
  limit: number;
}

/**
 * Reads events with `after < id <= upTo` in id order, at most `limit`, optionally of one client,
 * one job and some kinds, each with its job's client (`LEFT JOIN`: an event whose job was deleted
 * is still returned, with `client` null, so a reader can tell a deleted job from an id that was
 * never committed) and, for `log`, its log line (found by its job and id, the key of `logs`). Reads only committed rows; no locks. Uses the
 * primary key (or `events_job_idx` with `jobId`).
 */
export const readEvents = defineQuery<ReadEventsParams, EventRow>(
  'read-events',
  `SELECT e.id, e.job_id, e.kind, e.task_id, e.data, COALESCE(j.client, e.data->>'client') AS client,
          l.id AS log_id, l.severity AS log_severity, l.progname AS log_progname,
          l.message AS log_message, l.created_at AS log_created_at, l.updated_at AS log_updated_at,
          l.visible AS log_visible
     FROM events e
     LEFT JOIN jobs j ON j.id = e.job_id
     LEFT JOIN logs l ON e.kind = 'log' AND l.job_id = e.job_id AND l.id = e.log_id
    WHERE e.id > $after
      AND ($upTo::bigint IS NULL OR e.id <= $upTo::bigint)
      AND ($jobId::bigint IS NULL OR e.job_id = $jobId::bigint)
      AND ($client::text IS NULL OR j.client = $client::text)
      AND e.kind = ANY($kinds::text[])
    ORDER BY e.id
    LIMIT $limit`,
);

/** The retained window of the event log. */
export interface EventWindowRow {
  /** The oldest retained event's id; null when the table is empty. */
  oldest_id: number | null;
  /** The newest committed event's id; null when the table is empty. */
  newest_id: number | null;
  /** The last id the sequence handed out (committed or not); null before the first event. */
  last_allocated_id: number | null;
}

/**
 * Reads the oldest and newest retained event ids and the sequence's last value (ids handed out to
 * transactions that may not have committed). `min`/`max` use the primary key; no locks.
 */
export const readEventWindow = defineQuery<Record<string, never>, EventWindowRow>(
  'read-event-window',
  `SELECT (SELECT min(id) FROM events) AS oldest_id,
          (SELECT max(id) FROM events) AS newest_id,
          pg_sequence_last_value('events_id_seq'::regclass) AS last_allocated_id`,
);

/**
 * The newest id among events created before `cutoff` (null when there is none): the retention
 * sweep deletes up to it, so what it deletes is always a prefix of the ids and "the oldest
 * retained id" tells a reader exactly whether it missed anything. Uses `events_created_idx`.
 */
export const readEventCutoffId = defineQuery<{ cutoff: Date }, { id: number | null }>(
  'read-event-cutoff-id',
  `SELECT max(id) AS id FROM events WHERE created_at < $cutoff`,
);

/**
 * Deletes up to `limit` events with `id <= upTo`, oldest first. No other table is touched; the
 * rows are unlogged, so the statement is cheap. No state edge.
 */
export const deleteEventsUpTo = defineQuery<{ upTo: number; limit: number }>(
  'delete-events-up-to',
  `DELETE FROM events WHERE id IN (
     SELECT id FROM events WHERE id <= $upTo ORDER BY id LIMIT $limit)`,
);
