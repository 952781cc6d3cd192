/**
 * The pure decisions of user schedules (issue 11 part 4), apart so they are tested without a
 * database or a clock: reading a cron expression in a time zone, the slots it gives, which due
 * slots get a job after downtime (`catch_up`) and which a still running job forbids (`overlap`).
 *
 * Cron expressions are read by croner: 5 fields (minute hour day-of-month month day-of-week), or
 * 6 with seconds first; names (`MON`, `JAN`), `L`, `W`, `#` and nicknames (`@daily`) as croner
 * reads them; day-of-month and day-of-week combine with OR as in Vixie cron. Slots are computed in
 * the schedule's IANA time zone. Over DST changes a fixed-time slot (no `*` and no step in the
 * second, minute and hour fields, e.g. `30 2 * * *` or `0 9,17 * * 1-5`) runs once a day: in a
 * spring-forward gap at the first valid time after it, on a fall-back day at its first
 * occurrence only. Other expressions follow elapsed time: they skip the times in a gap and run in
 * both occurrences of a repeated hour (Vixie cron does the same).
 */
import { Cron } from 'croner';

/** `overlap`: `skip` starts no run while the previous one is unfinished; `allow` always starts one. */
export const OVERLAP_MODES = ['skip', 'allow'] as const;
export type Overlap = (typeof OVERLAP_MODES)[number];

/**
 * `catch_up`, for slots that passed while no leader ran them (downtime, a leader change):
 * `none` runs none of them, `latest` runs the most recent one, `all` runs each of them.
 */
export const CATCH_UP_MODES = ['none', 'latest', 'all'] as const;
export type CatchUp = (typeof CATCH_UP_MODES)[number];

/**
 * How late a slot may be handled and still count as on time (not missed) under `catch_up:
 * none`: a timer fires within milliseconds, a leader change takes a few seconds.
 */
export const ON_TIME_MS = 10_000;

/** Most slots of one schedule handled at once; older missed slots than these are dropped. */
export const MAX_DUE_SLOTS = 1_000;

/** A compiled schedule: its slots in its time zone. */
export interface CronSlots {
  /** The first slot strictly after `after`, or null when there is none. */
  next(after: Date): Date | null;
  /**
   * The slots `from` ≤ slot ≤ `now`, earliest first: at most the latest {@link MAX_DUE_SLOTS}
   * (`olderDropped` when there were more).
   */
  due(from: Date, now: Date): { slots: Date[]; olderDropped: boolean };
}

/** The outcome of reading a cron expression. */
export type CronReading = { ok: true; slots: CronSlots } | { ok: false; problem: string };

/** Whether `timezone` is an IANA time zone name this runtime knows (e.g. `Europe/London`, `UTC`). */
export function isTimeZone(timezone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    return true;
  } catch {
    return false;
  }
}

/**
 * Reads a cron expression in `timezone` (check the zone with {@link isTimeZone} first).
 * @returns the compiled slots, or the parser's problem in words (no exception).
 */
export function readCron(expression: string, timezone: string): CronReading {
  let cron: Cron;
  try {
    cron = new Cron(expression.trim(), {
      timezone,
      mode: '5-or-6-parts',
      fixedTimeRule: 'no-wildcard',
      paused: true,
    });
  } catch (err) {
    return {
      ok: false,
      problem: (err instanceof Error ? err.message : String(err)).replace(/^CronPattern: /, ''),
    };
  }
  const next = (after: Date): Date | null => cron.nextRun(after);
  return {
    ok: true,
    slots: {
      next,
      due(from, now) {
        const slots: Date[] = [];
        // A slot at `from` exactly is due: start looking just before it.
        let at = next(new Date(from.getTime() - 1));
        while (at && at.getTime() <= now.getTime() && slots.length <= MAX_DUE_SLOTS) {
          slots.push(at);
          at = next(at);
        }
        if (slots.length <= MAX_DUE_SLOTS) return { slots, olderDropped: false };
        // More than the cap: the latest MAX_DUE_SLOTS (counting the rest would walk every slot).
        const latest = cron
          .previousRuns(MAX_DUE_SLOTS, new Date(now.getTime() + 1))
          .filter((d) => d.getTime() >= from.getTime())
          .reverse();
        return { slots: latest, olderDropped: true };
      },
    },
  };
}

/** Why a due slot got no job. */
export type SkipReason = 'missed' | 'overlap';

/** What to do with the due slots of one schedule. */
export interface SlotPlan {
  /** Slots to submit a job for, earliest first. */
  submit: Date[];
  /** Due slots that get no job, earliest first, with the reason. */
  skipped: { slot: Date; reason: SkipReason }[];
}

/**
 * Decides which due slots get a job.
 * - `catch_up`: every due slot but the latest was missed (a later one has come since). `all`
 *   runs them all; `latest` runs only the latest; `none` runs the latest only when it is on time
 *   (at most {@link ON_TIME_MS} ago), so after downtime nothing that fell in it runs.
 * - `overlap: skip`: no run while the previous one is unfinished (`previousUnfinished`), and at
 *   most one run now, the earliest chosen slot (each later one would overlap it).
 * @param due - due slots, earliest first.
 */
export function planSlots(input: {
  due: readonly Date[];
  now: Date;
  catchUp: CatchUp;
  overlap: Overlap;
  previousUnfinished: boolean;
}): SlotPlan {
  const { due, now, catchUp, overlap, previousUnfinished } = input;
  const latest = due.at(-1);
  let chosen: Date[];
  if (catchUp === 'all') chosen = [...due];
  else if (!latest) chosen = [];
  else if (catchUp === 'latest' || now.getTime() - latest.getTime() <= ON_TIME_MS) chosen = [latest];
  else chosen = [];
  let submit = chosen;
  if (overlap === 'skip') submit = previousUnfinished ? [] : chosen.slice(0, 1);
  const skipped = due
    .filter((slot) => !submit.includes(slot))
    .map((slot) => ({ slot, reason: chosen.includes(slot) ? ('overlap' as const) : ('missed' as const) }));
  return { submit, skipped };
}
