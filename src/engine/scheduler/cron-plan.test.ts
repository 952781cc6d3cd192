import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_DUE_SLOTS, ON_TIME_MS, isTimeZone, planSlots, readCron, type CronSlots } from './cron-plan.js';

const iso = (d: Date | null | undefined): string | null => (d ? d.toISOString() : null);

function slotsOf(expression: string, timezone: string): CronSlots {
  const r = readCron(expression, timezone);
  assert.ok(r.ok, r.ok ? '' : r.problem);
  return r.slots;
}

/** The slots from `from` (inclusive) to `to` (inclusive), as ISO strings. */
function between(s: CronSlots, from: string, to: string): string[] {
  return s.due(new Date(from), new Date(to)).slots.map((d) => d.toISOString());
}

void describe('cron plan: reading expressions', () => {
  void it('takes 5 fields or 6 with seconds first, and refuses anything else with the reason', () => {
    const five = slotsOf('30 2 * * *', 'UTC');
    assert.equal(iso(five.next(new Date('2030-01-01T00:00:00Z'))), '2030-01-01T02:30:00.000Z');
    const six = slotsOf('*/10 * * * * *', 'UTC');
    assert.equal(iso(six.next(new Date('2030-01-01T00:00:01Z'))), '2030-01-01T00:00:10.000Z');
    assert.equal(
      iso(slotsOf('@daily', 'UTC').next(new Date('2030-01-01T00:00:01Z'))),
      '2030-01-02T00:00:00.000Z',
    );
    for (const [bad, why] of [
      ['61 * * * *', /minute/],
      ['* * * *', /five, six, or seven/],
      ['* * * * * * *', /5 or 6 parts/],
      ['every day', /./],
    ] as const) {
      const r = readCron(bad, 'UTC');
      assert.equal(r.ok, false, bad);
      if (!r.ok) assert.match(r.problem, why);
    }
  });

  void it('knows IANA time zones', () => {
    assert.equal(isTimeZone('Europe/London'), true);
    assert.equal(isTimeZone('America/New_York'), true);
    assert.equal(isTimeZone('UTC'), true);
    assert.equal(isTimeZone('Mars/Olympus_Mons'), false);
    assert.equal(isTimeZone(''), false);
  });

  void it('a slot at the cursor itself is due; the next slot is strictly after', () => {
    const s = slotsOf('* * * * *', 'UTC');
    assert.deepEqual(between(s, '2030-01-01T00:01:00Z', '2030-01-01T00:03:00Z'), [
      '2030-01-01T00:01:00.000Z',
      '2030-01-01T00:02:00.000Z',
      '2030-01-01T00:03:00.000Z',
    ]);
    assert.equal(iso(s.next(new Date('2030-01-01T00:01:00Z'))), '2030-01-01T00:02:00.000Z');
  });

  void it('keeps the latest MAX_DUE_SLOTS due slots when more are due', () => {
    const s = slotsOf('* * * * * *', 'UTC');
    const from = new Date('2030-01-01T00:00:00Z');
    const now = new Date(from.getTime() + 2 * MAX_DUE_SLOTS * 1000);
    const due = s.due(from, now);
    assert.equal(due.olderDropped, true);
    assert.equal(due.slots.length, MAX_DUE_SLOTS);
    assert.equal(iso(due.slots.at(-1)), now.toISOString());
    assert.ok(due.slots[0]!.getTime() < due.slots[1]!.getTime(), 'earliest first');
  });
});

void describe('cron plan: DST', () => {
  void it('America/New_York spring forward: a 02:30 job runs once, at 03:00 EDT, on the day 02:30 does not exist', () => {
    const s = slotsOf('30 2 * * *', 'America/New_York');
    assert.deepEqual(between(s, '2026-03-07T00:00:00Z', '2026-03-10T00:00:00Z'), [
      '2026-03-07T07:30:00.000Z', // 02:30 EST
      '2026-03-08T07:00:00.000Z', // 03:00 EDT (02:00–02:59 skipped)
      '2026-03-09T06:30:00.000Z', // 02:30 EDT
    ]);
  });

  void it('America/New_York fall back: a 01:30 job runs once on the day 01:30 happens twice', () => {
    const s = slotsOf('30 1 * * *', 'America/New_York');
    assert.deepEqual(between(s, '2026-10-31T00:00:00Z', '2026-11-03T00:00:00Z'), [
      '2026-10-31T05:30:00.000Z', // 01:30 EDT
      '2026-11-01T05:30:00.000Z', // the first 01:30 (EDT) only
      '2026-11-02T06:30:00.000Z', // 01:30 EST
    ]);
    // A list of fixed times is fixed-time too (Vixie cron's rule): still once a day each.
    const twice = slotsOf('30 1,13 * * *', 'America/New_York');
    assert.equal(between(twice, '2026-11-01T00:00:00Z', '2026-11-02T00:00:00Z').length, 2);
  });

  void it('Europe/London spring forward: a 01:30 job runs once, at 02:00 BST, when 01:00–01:59 does not exist', () => {
    const s = slotsOf('30 1 * * *', 'Europe/London');
    assert.deepEqual(between(s, '2026-03-28T00:00:00Z', '2026-03-31T00:00:00Z'), [
      '2026-03-28T01:30:00.000Z', // 01:30 GMT
      '2026-03-29T01:00:00.000Z', // 02:00 BST
      '2026-03-30T00:30:00.000Z', // 01:30 BST
    ]);
  });

  void it('Europe/London fall back: a 01:30 job runs once; an hourly job runs in both 01:00 hours', () => {
    const s = slotsOf('30 1 * * *', 'Europe/London');
    assert.deepEqual(between(s, '2026-10-24T00:00:00Z', '2026-10-27T00:00:00Z'), [
      '2026-10-24T00:30:00.000Z', // 01:30 BST
      '2026-10-25T00:30:00.000Z', // the first 01:30 (BST) only
      '2026-10-26T01:30:00.000Z', // 01:30 GMT
    ]);
    // An interval job follows elapsed time: hourly stays hourly through the repeated hour.
    const hourly = slotsOf('0 * * * *', 'Europe/London');
    assert.deepEqual(between(hourly, '2026-10-24T23:00:00Z', '2026-10-25T02:00:00Z'), [
      '2026-10-24T23:00:00.000Z',
      '2026-10-25T00:00:00.000Z', // 01:00 BST
      '2026-10-25T01:00:00.000Z', // 01:00 GMT
      '2026-10-25T02:00:00.000Z',
    ]);
  });
});

void describe('cron plan: catch-up and overlap', () => {
  const t0 = Date.UTC(2030, 0, 1, 0, 0, 0);
  const min = (n: number) => new Date(t0 + n * 60_000);
  // Ten slots missed during a downtime, the latest 30 s before now.
  const due = Array.from({ length: 10 }, (_, i) => min(i + 1));
  const now = new Date(min(10).getTime() + 30_000);
  const plan = (catchUp: 'none' | 'latest' | 'all', overlap: 'skip' | 'allow', previousUnfinished = false) =>
    planSlots({ due, now, catchUp, overlap, previousUnfinished });

  void it('all runs every missed slot; latest only the most recent; none none of them', () => {
    assert.deepEqual(plan('all', 'allow').submit, due);
    assert.deepEqual(plan('all', 'allow').skipped, []);
    assert.deepEqual(plan('latest', 'allow').submit, [min(10)]);
    assert.deepEqual(
      plan('latest', 'allow').skipped.map((s) => s.reason),
      Array<string>(9).fill('missed'),
    );
    assert.deepEqual(plan('none', 'allow').submit, []);
    assert.equal(plan('none', 'allow').skipped.length, 10);
  });

  void it('none still runs a slot that is on time, and drops one that is late', () => {
    const one = [min(1)];
    const onTime = new Date(min(1).getTime() + ON_TIME_MS);
    const late = new Date(min(1).getTime() + ON_TIME_MS + 1);
    const p = (at: Date) =>
      planSlots({ due: one, now: at, catchUp: 'none', overlap: 'allow', previousUnfinished: false });
    assert.deepEqual(p(onTime).submit, one);
    assert.deepEqual(p(late).submit, []);
    assert.deepEqual(p(late).skipped, [{ slot: min(1), reason: 'missed' }]);
  });

  void it('overlap skip: nothing while the previous run is unfinished, else one run, the rest skipped as overlapping', () => {
    assert.deepEqual(plan('latest', 'skip', true).submit, []);
    assert.deepEqual(plan('latest', 'skip', true).skipped.at(-1), { slot: min(10), reason: 'overlap' });
    assert.deepEqual(plan('latest', 'skip', false).submit, [min(10)]);
    const all = plan('all', 'skip', false);
    assert.deepEqual(all.submit, [min(1)]);
    assert.deepEqual(
      all.skipped.map((s) => s.reason),
      Array<string>(9).fill('overlap'),
    );
    // allow ignores the previous run.
    assert.deepEqual(plan('latest', 'allow', true).submit, [min(10)]);
  });

  void it('nothing due plans nothing', () => {
    assert.deepEqual(
      planSlots({ due: [], now, catchUp: 'all', overlap: 'skip', previousUnfinished: false }),
      {
        submit: [],
        skipped: [],
      },
    );
  });
});
