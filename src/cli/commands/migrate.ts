/** `task-engine migrate`: brings the database schema up to date and reports its version. */
import type { Command } from 'commander';
import { loadConfig } from '../../config/load-config.js';
import { openConfiguredStore } from '../../server.js';
import { readAppliedMigrations } from '../../store/migrate.js';
import type { CliIO } from '../io.js';

/** Registers `migrate`. */
export function registerMigrateCommand(program: Command, io: CliIO): void {
  program
    .command('migrate')
    .description('apply pending database migrations (the engine also does this at start)')
    .action(async () => {
      const config = loadConfig(io.env);
      const { db, lock } = await openConfiguredStore(config, 'task-engine migrate');
      try {
        const rows = await readAppliedMigrations(db);
        for (const r of rows)
          io.out(`${String(r.version).padStart(4, '0')}_${r.name}  applied ${r.applied_at.toISOString()}`);
        io.out(`database schema is at version ${rows.at(-1)?.version ?? 0}`);
      } finally {
        await db.close();
        await lock?.release();
      }
    });
}
