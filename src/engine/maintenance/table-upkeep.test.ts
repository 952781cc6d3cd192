/** The table upkeep's plan: PostgreSQL's autovacuum thresholds, and only where autovacuum does not act. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TableUpkeepStatsRow } from '../../store/queries/table-upkeep.js';
import { planTableUpkeep } from './table-upkeep.js';

const row = (over: Partial<TableUpkeepStatsRow>): TableUpkeepStatsRow => ({
  table: 'jobs',
  live_rows: 1000,
  dead_rows: 0,
  modified_rows: 0,
  reltuples: 1000,
  autovacuum: false,
  ...over,
});

describe('planTableUpkeep', () => {
  it('vacuums past 50 + 20 % of the rows dead, and not at the threshold', () => {
    assert.deepEqual(
      planTableUpkeep([row({ dead_rows: 250 })], { noDaemon: false }).map((s) => s.action),
      [],
    );
    const [step] = planTableUpkeep([row({ dead_rows: 251, modified_rows: 5000 })], { noDaemon: false });
    assert.equal(step?.action, 'vacuum');
    assert.equal(step?.table, 'jobs');
    assert.match(step.reason, /251 dead rows \(threshold 250\)/);
  });

  it('analyses past 50 + 10 % of the rows changed when there is nothing to vacuum', () => {
    assert.deepEqual(planTableUpkeep([row({ modified_rows: 150 })], { noDaemon: false }), []);
    const [step] = planTableUpkeep([row({ modified_rows: 151 })], { noDaemon: false });
    assert.equal(step?.action, 'analyze');
  });

  it('treats a never-analysed table (reltuples -1) as empty: a fresh database gets statistics soon', () => {
    const [step] = planTableUpkeep([row({ reltuples: -1, modified_rows: 51 })], { noDaemon: false });
    assert.equal(step?.action, 'analyze');
  });

  it('leaves tables that autovacuum looks after, unless no daemon runs (PGlite)', () => {
    const busy = row({ dead_rows: 10_000, autovacuum: true });
    assert.deepEqual(planTableUpkeep([busy], { noDaemon: false }), []);
    assert.equal(planTableUpkeep([busy], { noDaemon: true })[0]?.action, 'vacuum');
  });

  it('acts only on the engine tables, in the fixed order', () => {
    const steps = planTableUpkeep(
      [
        row({ table: 'logs', dead_rows: 900 }),
        row({ table: 'not_ours', dead_rows: 900 }),
        row({ table: 'jobs', dead_rows: 900 }),
      ],
      { noDaemon: false },
    );
    assert.deepEqual(
      steps.map((s) => s.table),
      ['jobs', 'logs'],
    );
  });
});
