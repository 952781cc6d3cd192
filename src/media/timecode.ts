/**
 * Times in media job parameters (`start`, `end`, `frame_time`, `thumbnail_time`, `start_at`): the
 * original product accepts either an offset into the source (`hh:mm:ss(.fff)`, `mm:ss.fff` as in its
 * `1:34.000` example, or plain seconds) or a UTC timestamp.
 */

/** A parsed time: an offset from the start of the source, or an absolute UTC instant. */
export type MediaTime = { kind: 'offset'; seconds: number } | { kind: 'utc'; epochMs: number };

const CLOCK = /^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$/;
const ISO = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/i;

/**
 * Parses a media time.
 * - a number or numeric string: seconds (>= 0);
 * - `hh:mm:ss(.fff)` or `mm:ss(.fff)`: an offset;
 * - `yyyy-MM-ddTHH:mm:ss(.fff)` with optional `Z`/offset: UTC (no zone means UTC, as SPEC 4 says for
 *   `run_at`); invalid calendar dates are refused.
 * @returns the time, or null when `value` is none of these.
 */
export function parseMediaTime(value: unknown): MediaTime | null {
  if (typeof value === 'number')
    return Number.isFinite(value) && value >= 0 ? { kind: 'offset', seconds: value } : null;
  if (typeof value !== 'string') return null;
  const v = value.trim();
  if (/^\d+(?:\.\d+)?$/.test(v)) return { kind: 'offset', seconds: Number(v) };
  const c = CLOCK.exec(v);
  if (c) {
    const h = c[1] === undefined ? 0 : Number(c[1]);
    const m = Number(c[2]);
    const s = Number(c[3]);
    if (m >= 60 || s >= 60) return null;
    return { kind: 'offset', seconds: h * 3600 + m * 60 + s };
  }
  const d = ISO.exec(v);
  if (d) {
    const [, y, mo, da, hh, mi, ss, frac, zone] = d;
    const zoneText =
      zone === undefined
        ? 'Z'
        : zone.toUpperCase() === 'Z'
          ? 'Z'
          : zone.replace(/^([+-]\d{2})(\d{2})$/, '$1:$2');
    const text = `${y}-${mo}-${da}T${hh}:${mi}:${ss}${frac ?? ''}${zoneText}`;
    const ms = Date.parse(text);
    if (!Number.isFinite(ms)) return null;
    // Date.parse rolls 2030-02-30 over to March; refuse dates that do not round-trip.
    const check = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(da)));
    if (check.getUTCMonth() !== Number(mo) - 1 || check.getUTCDate() !== Number(da)) return null;
    if (Number(hh) > 23 || Number(mi) > 59 || Number(ss) > 59) return null;
    return { kind: 'utc', epochMs: ms };
  }
  return null;
}

/** What {@link parseMediaTime} accepts, for error messages. */
export const MEDIA_TIME_HINT =
  'seconds (e.g. 12.5), an offset hh:mm:ss(.fff) or mm:ss(.fff), or a UTC timestamp yyyy-MM-ddTHH:mm:ss(.fff)(Z)';

/**
 * Turns a media time into an offset in seconds from the source's start.
 * @param startEpochMs the UTC instant of the source's first frame (an HLS stream's first
 *   `EXT-X-PROGRAM-DATE-TIME`); required for UTC times.
 * @returns seconds, or a message explaining why it cannot be placed.
 */
export function toOffsetSeconds(t: MediaTime, startEpochMs: number | null): number | string {
  if (t.kind === 'offset') return t.seconds;
  if (startEpochMs === null)
    return 'a UTC time needs a source with EXT-X-PROGRAM-DATE-TIME (an HLS stream); use an offset for files';
  return (t.epochMs - startEpochMs) / 1000;
}

/** Formats seconds as `h:mm:ss.fff` for logs. */
export function formatSeconds(seconds: number): string {
  const ms = Math.round(seconds * 1000);
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = (ms % 60_000) / 1000;
  return `${h}:${String(m).padStart(2, '0')}:${s.toFixed(3).padStart(6, '0')}`;
}
