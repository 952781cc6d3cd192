/**
 * The engine's state at a glance: `health` (`GET /health`: database, queues with their workers,
 * task and job counts, slot settings) and `dashboard` (`GET /dashboard`: the started, queued,
 * scheduled, paused and pending jobs in admission order).
 */
import type { Command } from 'commander';
import type { DashboardJobRecord } from '../../engine/jobs/records.js';
import type { Dashboard } from '../../engine/status/dashboard.js';
import type { HealthReport } from '../../engine/status/health.js';
import {
  addConnectionOptions,
  callApi,
  printJson,
  resolveConnection,
  type ConnectionOptions,
} from '../http-client.js';
import type { CliIO } from '../io.js';
import { printFields, printTable } from '../table.js';

interface StatusOptions extends ConnectionOptions {
  json?: boolean;
  client?: string;
  forClient?: string;
}

/** The job lists of `/dashboard`, in the order they are printed. */
const DASHBOARD_LISTS = ['started', 'queued', 'scheduled', 'paused', 'pending'] as const;

/** Registers `health` and `dashboard`. */
export function registerStatusCommands(program: Command, io: CliIO): void {
  addConnectionOptions(
    program
      .command('health')
      .description(
        'status (ok or degraded, and why), database, queues (workers, working, pending), task and job counts',
      )
      .option('--json', 'print the API reply (GET /health)'),
  ).action(async (opts: StatusOptions) => {
    const h = await callApi<HealthReport>(await resolveConnection(io, opts), 'GET', '/health');
    if (opts.json) return printJson(io, h);
    printFields(io, [
      ['status', h.status],
      ...h.reasons.map((r): [string, string] => ['reason', r]),
      ['version', h.version],
      ...Object.entries(h.databases).map(([k, v]): [string, string] => [k, v]),
      ['max_jobs', h.jobs.max_jobs],
      ['priority_slots', h.jobs.priority_slots],
    ]);
    io.out('');
    printTable(
      io,
      ['QUEUE', 'WORKERS', 'WORKING', 'PENDING'],
      Object.entries(h.queues).map(([q, c]) => [q, c.workers, c.working, c.pending]),
      { align: ['left', 'right', 'right', 'right'] },
    );
    io.out('');
    const { max_jobs: _m, priority_slots: _p, ...jobs } = h.jobs;
    printTable(
      io,
      ['JOBS', 'COUNT'],
      Object.entries(jobs).map(([k, v]) => [k, v]),
      { align: ['left', 'right'] },
    );
    io.out('');
    printTable(
      io,
      ['TASKS', 'COUNT'],
      Object.entries(h.tasks).map(([k, v]) => [k, v]),
      { align: ['left', 'right'] },
    );
  });

  addConnectionOptions(
    program
      .command('dashboard')
      .description('started, queued, scheduled, paused and pending jobs, in admission order')
      .option('--for-client <name>', 'admins: only this client')
      .option('--json', 'print the API reply (GET /dashboard)'),
  ).action(async (opts: StatusOptions) => {
    const query = opts.forClient ? `?client=${encodeURIComponent(opts.forClient)}` : '';
    const d = await callApi<Dashboard>(await resolveConnection(io, opts), 'GET', `/dashboard${query}`);
    if (opts.json) return printJson(io, d);
    const rows = DASHBOARD_LISTS.flatMap((state) =>
      ((d[state] as DashboardJobRecord[] | undefined) ?? []).map((j) => [
        state,
        j.position,
        j.id,
        j.priority,
        j.top_of_queue ? 'top' : null,
        j.workflow,
        j.client,
        j.run_at,
        j.started_at,
      ]),
    );
    io.out(`engine ${d.version}: max_jobs ${d.max_jobs}, priority_slots ${d.priority_slots}`);
    const counts = DASHBOARD_LISTS.map((s) => `${s} ${(d[s] as unknown[] | undefined)?.length ?? 0}`);
    io.out(counts.join(', '));
    io.out('');
    printTable(io, ['STATE', 'POS', 'ID', 'PRI', 'TOP', 'WORKFLOW', 'CLIENT', 'RUN AT', 'STARTED'], rows, {
      align: ['left', 'right', 'right', 'right'],
      empty: '(no jobs waiting or running)',
    });
  });
}
