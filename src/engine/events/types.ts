/**
 * The events of `GET /events` (Server-Sent Events). Rows of the `events` table (migration 0009),
 * written by triggers in the transaction of each change; `id` is the SSE event id (monotonic,
 * one sequence for every kind), `kind` its SSE event name.
 */
import type { JobState } from '../jobs/transitions.js';
import type { LogRecord } from '../jobs/records.js';

/** The SSE event names of `GET /events`, one per `events.kind`. */
export const EVENT_KINDS = ['job', 'task', 'log'] as const;
/** One of {@link EVENT_KINDS}. */
export type EventKind = (typeof EVENT_KINDS)[number];

/** `event: job` — a job was created or its `queue_state`, `failed`, `priority` or `run` changed. */
export interface JobEventData {
  job_id: number;
  client: string;
  workflow: string;
  queue_state: JobState;
  failed: boolean;
  priority: number;
  run: number;
  /** The state before the change; null when the job was just created. */
  previous_state: JobState | null;
}

/** `event: task` — a task's `state` or `progress` changed. */
export interface TaskEventData {
  job_id: number;
  task_id: number;
  name: string;
  queue: string;
  state: string;
  previous_state: string;
  attempts: number;
  progress: number | null;
  progress_message: string | null;
  progress_detail: Record<string, unknown> | null;
}

/** `event: log` — a job log line, exactly as `GET /logs/<id>` returns it. */
export type LogEventData = LogRecord;

/** One event as the hub hands it to subscribers. */
export type EngineEvent =
  | { id: number; kind: 'job'; jobId: number; client: string; data: JobEventData }
  | { id: number; kind: 'task'; jobId: number; client: string; data: TaskEventData }
  | { id: number; kind: 'log'; jobId: number; client: string; data: LogEventData };
