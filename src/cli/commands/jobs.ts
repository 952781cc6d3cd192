/** `task-engine jobs`: lists jobs of a running engine, with the `/jobs` filters. */
import type { Command } from 'commander';
import {
  addConnectionOptions,
  callApi,
  printJson,
  resolveConnection,
  type ConnectionOptions,
} from '../http-client.js';
import { CliError, type CliIO } from '../io.js';
import { printTable } from '../table.js';

const STATES = ['queued', 'started', 'completed', 'pending', 'broken', 'scheduled', 'paused'];

interface JobsOptions extends ConnectionOptions {
  state?: string;
  client?: string;
  filterClient?: string;
  failed?: boolean;
  persist?: string;
  search?: string;
  from?: string;
  to?: string;
  ids?: string;
  limit?: string;
  offset?: string;
  afterId?: string;
  orderBy?: string;
  asc?: boolean;
  json?: boolean;
}

interface JobRow {
  id: number;
  client: string;
  workflow: string;
  priority: number;
  queue_state: string;
  failed: boolean;
  created_at: string;
  run_at: string | null;
}

/**
 * Builds the `/jobs` query string from the options. `--state` takes a name or the numeric id.
 * @throws {CliError} (exit 2) for an unknown state name.
 */
export function jobsQuery(opts: JobsOptions): string {
  const q = new URLSearchParams();
  if (opts.state !== undefined) {
    const id = /^\d+$/.test(opts.state) ? opts.state : String(STATES.indexOf(opts.state));
    if (id === '-1')
      throw new CliError(`--state accepts ${STATES.join(', ')} or 0 to 6 (got "${opts.state}")`, 2);
    q.set('state', id);
  }
  const map: [keyof JobsOptions, string][] = [
    ['filterClient', 'client'],
    ['persist', 'persist'],
    ['search', 'search'],
    ['from', 'from'],
    ['to', 'to'],
    ['ids', 'job_ids'],
    ['limit', 'limit'],
    ['offset', 'offset'],
    ['afterId', 'after_id'],
    ['orderBy', 'order_by'],
  ];
  for (const [opt, name] of map) {
    const v = opts[opt];
    if (typeof v === 'string') q.set(name, v);
  }
  if (opts.failed) q.set('failed', '1');
  if (opts.asc) q.set('asc', '1');
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Registers `jobs`. */
export function registerJobsCommand(program: Command, io: CliIO): void {
  addConnectionOptions(
    program
      .command('jobs')
      .description('list jobs (default: the last 10, newest first)')
      .option('--state <state>', `${STATES.join(', ')} (or 0 to 6)`)
      .option('--for-client <name>', 'admins: only this client', undefined)
      .option('--failed', 'failed jobs only')
      .option('--persist <1|0>', 'persisted jobs only (1) or not persisted (0)')
      .option('--search <text>', "substring of content_id or of the job's parameters")
      .option('--from <time>', 'created at or after (UTC)')
      .option('--to <time>', 'created at or before (UTC)')
      .option('--ids <list>', 'comma-separated job ids')
      .option('--limit <n>', 'rows, 1 to 1000 (default 10)')
      .option('--offset <n>', 'rows to skip')
      .option('--after-id <id>', 'the rows right after this job in the same order (keyset paging)')
      .option(
        '--order-by <column>',
        'id, created_at, updated_at, priority, run_at, client, workflow, queue_state',
      )
      .option('--asc', 'oldest first')
      .option('--json', 'print the API reply (GET /jobs)'),
  ).action(async (opts: JobsOptions & { forClient?: string }) => {
    const conn = await resolveConnection(io, opts);
    const rows = await callApi<JobRow[]>(
      conn,
      'GET',
      `/jobs${jobsQuery({ ...opts, filterClient: opts.forClient })}`,
    );
    if (opts.json) return printJson(io, rows);
    printTable(
      io,
      ['ID', 'STATE', 'FAILED', 'PRI', 'WORKFLOW', 'CLIENT', 'CREATED', 'RUN AT'],
      rows.map((j) => [
        j.id,
        j.queue_state,
        j.failed,
        j.priority,
        j.workflow,
        j.client,
        j.created_at,
        j.run_at,
      ]),
      { align: ['right', 'left', 'left', 'right'], empty: '(no jobs)' },
    );
  });
}
