/**
 * One job of a running engine: `job <id>` (the record, its tasks with state, progress and output,
 * and the job's outputs; `GET /jobs/<id>`), `attempts <id>` (every attempt of its tasks;
 * `GET /jobs/<id>/attempts`) and `callbacks <id>` (its callback deliveries;
 * `GET /jobs/<id>/callbacks`). Each prints the API's JSON with `--json`.
 */
import type { Command } from 'commander';
import type { AttemptRecord, CallbackRecord } from '../../engine/jobs/history.js';
import type { JobDetail } from '../../engine/jobs/service.js';
import {
  addConnectionOptions,
  callApi,
  jobIdArgument,
  printJson,
  resolveConnection,
  type ConnectionOptions,
} from '../http-client.js';
import type { CliIO } from '../io.js';
import { compact, duration, percent, printFields, printTable } from '../table.js';

interface ReadOptions extends ConnectionOptions {
  json?: boolean;
}

/** `completed (failed)`, `completed (succeeded)`, or the state. */
export function stateText(job: { queue_state: string; failed: boolean }): string {
  if (job.queue_state === 'completed') return `completed (${job.failed ? 'failed' : 'succeeded'})`;
  return job.failed ? `${job.queue_state} (failed)` : job.queue_state;
}

/** Prints a job's detail: its fields, parameters, task table, outputs and each task's output. */
export function printJobDetail(io: CliIO, job: JobDetail): void {
  const fields: [string, string | number | boolean | null][] = [
    ['job', job.id],
    ['workflow', job.workflow],
    ['client', job.client],
    ['state', stateText(job)],
    ['priority', job.priority],
    ['position', job.position],
    ['top of queue', job.top_of_queue],
    ['persist', job.persist],
    ['run', job.run],
    ['created', job.created_at],
    ['run at', job.run_at],
    ['started', job.started_at],
    ['finished', job.finished_at],
  ];
  if (job.semaphore_url) fields.push(['semaphore', job.semaphore_url]);
  if (job.rerun_of !== null) fields.push(['rerun of', job.rerun_of]);
  if (job.rerun_by !== null) fields.push(['rerun by', job.rerun_by]);
  if (job.retried_at) fields.push(['retried', job.retried_at]);
  if (job.schedule) fields.push(['schedule', `${job.schedule} (slot ${job.scheduled_for ?? '-'})`]);
  if (job.idempotency_key) fields.push(['idempotency key', job.idempotency_key]);
  if (job.error) fields.push(['error', job.error]);
  fields.push(['parameters', compact(job.parameters, 400)]);
  printFields(io, fields);
  io.out('');
  printTable(
    io,
    ['TASK', 'QUEUE', 'STATE', 'PROGRESS', 'ATTEMPTS', 'DURATION', 'NEEDS', 'MESSAGE'],
    job.tasks.map((t) => [
      t.name,
      t.queue,
      t.state,
      t.state === 'succeeded' ? '100%' : percent(t.progress),
      t.attempts,
      duration(t.duration_ms),
      t.needs.join(','),
      t.error ?? (t.state === 'running' ? t.progress_message : null),
    ]),
    { align: ['left', 'left', 'left', 'right', 'right', 'right'], empty: '(no tasks)' },
  );
  io.out('');
  if (job.outputs === null) io.out('outputs: - (rendered when the job ends)');
  else {
    io.out('outputs:');
    for (const [k, v] of Object.entries(job.outputs)) io.out(`  ${k}: ${compact(v, 400)}`);
  }
  const withOutput = job.tasks.filter((t) => t.output !== null && t.output !== undefined);
  if (withOutput.length > 0) {
    io.out('task outputs:');
    for (const t of withOutput) io.out(`  ${t.name}: ${compact(t.output, 400)}`);
  }
}

/** Registers `job`, `attempts` and `callbacks`. */
export function registerJobCommands(program: Command, io: CliIO): void {
  addConnectionOptions(
    program
      .command('job <id>')
      .description("show a job: its fields, tasks (state, progress, output) and the job's outputs")
      .option('--json', 'print the API reply (GET /jobs/<id>)'),
  ).action(async (idText: string, opts: ReadOptions) => {
    const id = jobIdArgument(idText);
    const job = await callApi<JobDetail>(await resolveConnection(io, opts), 'GET', `/jobs/${id}`);
    if (opts.json) printJson(io, job);
    else printJobDetail(io, job);
  });

  addConnectionOptions(
    program
      .command('attempts <id>')
      .description("list every attempt of a job's tasks, in start order")
      .option('--json', 'print the API reply (GET /jobs/<id>/attempts)'),
  ).action(async (idText: string, opts: ReadOptions) => {
    const id = jobIdArgument(idText);
    const rows = await callApi<AttemptRecord[]>(
      await resolveConnection(io, opts),
      'GET',
      `/jobs/${id}/attempts`,
    );
    if (opts.json) return printJson(io, rows);
    printTable(
      io,
      ['ID', 'TASK', 'NUMBER', 'RUN', 'STATE', 'STARTED', 'DURATION', 'WORKER', 'ERROR'],
      rows.map((a) => [
        a.id,
        a.task,
        a.number,
        a.run,
        a.state,
        a.started_at,
        a.finished_at ? duration(Date.parse(a.finished_at) - Date.parse(a.started_at)) : null,
        a.worker_id,
        a.error === null ? null : compact(a.error, 80),
      ]),
      { align: ['right', 'left', 'right', 'right', 'left', 'left', 'right'], empty: '(no attempts yet)' },
    );
  });

  addConnectionOptions(
    program
      .command('callbacks <id>')
      .description("list a job's callback deliveries and their state")
      .option('--json', 'print the API reply (GET /jobs/<id>/callbacks)'),
  ).action(async (idText: string, opts: ReadOptions) => {
    const id = jobIdArgument(idText);
    const rows = await callApi<CallbackRecord[]>(
      await resolveConnection(io, opts),
      'GET',
      `/jobs/${id}/callbacks`,
    );
    if (opts.json) return printJson(io, rows);
    printTable(
      io,
      ['ID', 'TASK', 'EVENT', 'TARGET', 'STATE', 'ATTEMPTS', 'STATUS', 'LAST ERROR', 'DELIVERED'],
      rows.map((d) => [
        d.id,
        d.kind === 'job' ? '(job)' : d.task_id,
        d.event,
        d.target,
        d.state,
        d.attempts,
        d.last_status,
        d.last_error === null ? null : compact(d.last_error, 60),
        d.delivered_at,
      ]),
      { align: ['right', 'right', 'left', 'left', 'left', 'right', 'right'], empty: '(no callbacks)' },
    );
  });
}
