/** The API's replies as the console reads them (docs/api.md). */

export type JobState = 'queued' | 'started' | 'completed' | 'pending' | 'broken' | 'scheduled' | 'paused';

/** The states in the order of their `/jobs?state=` numbers. */
export const JOB_STATES: JobState[] = [
  'queued',
  'started',
  'completed',
  'pending',
  'broken',
  'scheduled',
  'paused',
];

export interface JobRecord {
  id: number;
  client: string;
  workflow: string;
  priority: number;
  position: number;
  top_of_queue: boolean;
  parameters?: Record<string, unknown>;
  created_at: string;
  updated_at: string;
  queue_state: JobState;
  failed: boolean;
  run_at: string | null;
  persist: boolean;
  rerun_of: number | null;
  rerun_by: number | null;
  idempotency_key: string | null;
  run: number;
  retried_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  semaphore_url: string | null;
}

export type TaskState = 'waiting' | 'ready' | 'running' | 'succeeded' | 'failed' | 'skipped' | 'cancelled';

export interface TaskRecord {
  id: number;
  name: string;
  queue: string;
  state: TaskState;
  attempts: number;
  started_at: string | null;
  finished_at: string | null;
  error: string | null;
  needs?: string[];
  output?: unknown;
  progress?: number | null;
  progress_message?: string | null;
  progress_detail?: Record<string, unknown> | null;
  progress_at?: string | null;
  run_after?: string;
  created_at?: string;
  duration_ms?: number | null;
}

export interface JobDetail extends JobRecord {
  schedule: string | null;
  scheduled_for: string | null;
  outputs?: Record<string, unknown> | null;
  error?: string | null;
  tasks: TaskRecord[];
}

export interface LogEntry {
  id: number;
  job_id: number;
  severity: number;
  severity_description: string;
  progname: string;
  message: string;
  created_at: string;
  updated_at: string;
  task_id: number;
  visible: boolean;
}

export interface QueueCounter {
  workers: number;
  working: number;
  pending: number;
}

export interface Health {
  version: string;
  databases: Record<string, string>;
  queues: Record<string, QueueCounter>;
  tasks: { failed: number; pending: number; processed: number };
  jobs: Record<string, number>;
}

export interface Dashboard {
  max_jobs: number;
  priority_slots: number;
  started: JobRecord[];
  queued: JobRecord[];
  scheduled: JobRecord[];
  pending?: JobRecord[];
  paused?: JobRecord[];
  version: string;
}

export interface WorkflowTask {
  name: string;
  queue: string;
  run: string;
  needs: string[];
}

export interface Workflow {
  name: string;
  description?: string;
  source: 'common' | 'client';
  parameters: JsonSchema;
  tasks: WorkflowTask[];
}

/** The part of JSON Schema the submit form understands; anything else is edited as JSON. */
export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  default?: unknown;
  description?: string;
  enum?: unknown[];
  const?: unknown;
  format?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  items?: JsonSchema;
  additionalProperties?: boolean | JsonSchema;
  title?: string;
  [k: string]: unknown;
}

export interface ScheduleInfo {
  class: string;
  every?: unknown;
  cron?: string;
  timezone?: string;
  queue: string;
  description?: string;
  active: boolean;
  last_run_at: string | null;
  next_run_at: string | null;
  workflow?: string;
  parameters?: Record<string, unknown>;
  priority?: number;
  overlap?: string;
  catch_up?: string;
  client?: string;
}

export interface ClientRecord {
  name: string;
  admin: boolean;
  api_key_last4: string;
  created_at: string;
  updated_at: string;
  revoked_at: string | null;
}

export interface Stats {
  now: string;
  minutes: number;
  bucket_seconds: number;
  client: string | null;
  buckets: { at: string; completed: number; failed: number; broken: number }[];
  totals: { completed: number; failed: number; broken: number };
}

/** `GET /jobs/<id>/attempts`. */
export interface Attempt {
  id: number;
  task_id: number;
  task: string;
  number: number;
  worker_id: string | null;
  state: string;
  started_at: string | null;
  finished_at: string | null;
  error: string | null;
}

/** `GET /jobs/<id>/callbacks`. */
export interface CallbackDelivery {
  id: number;
  task_id: number | null;
  kind: string;
  event: string;
  target: string;
  state: string;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  created_at: string;
  delivered_at: string | null;
  next_attempt_at: string | null;
}
