/**
 * Trick play in a DASH MPD, over the files an asset already has:
 *
 * - **Trick-mode adaptation sets** (DASH-IF IOP 4.3, 3.2.9): for a video `AdaptationSet` whose
 *   Representations are fMP4/CMAF (`SegmentTemplate` with an `initialization` and a `media`
 *   template), an `AdaptationSet` with `<EssentialProperty
 *   schemeIdUri="http://dashif.org/guidelines/trickmode" value="<main AdaptationSet id>"/>` whose
 *   Representations address only the key frames of the same `.m4s` segments by byte range: a
 *   `SegmentList` with the init segment as `Initialization` and one `SegmentURL` per fragment that
 *   starts with a sync sample, `mediaRange` from the fragment's `moof` to the last byte of that
 *   sample in the `mdat` (the moof, the mdat header and the key frame — the same ranges as the HLS
 *   I-frame playlists of src/media/trickplay.ts, read with the box reader of src/media/fmp4.ts).
 *   The `SegmentTimeline` uses the main Representation's timescale and the fragments' decode times,
 *   so it lines up with the main set's timeline. `codingDependency="false"` and
 *   `maxPlayoutRate` (the frames from one key frame to the next, the fewest of any range but the
 *   last) as 3.2.9 asks. The main set's `ContentProtection` elements are copied: a CENC range is
 *   still a whole `moof` (with its `senc`) and its key frame's encrypted bytes.
 * - **Thumbnail tiles** (DASH-IF IOP 4.3, 6.2.6): an `AdaptationSet` `contentType="image"`,
 *   `mimeType="image/jpeg"` whose `SegmentTemplate` (`$Number$`, `duration` = one sheet's
 *   thumbnails times the interval) addresses the sprite sheets, with `<EssentialProperty
 *   schemeIdUri="http://dashif.org/thumbnail_tile" value="<columns>x<rows>"/>` and the whole
 *   sheet's `width`/`height`.
 *
 * The MPD is edited as text: the sets this module adds are recognised by those two scheme URIs,
 * removed and written again (so running twice gives the same MPD), and go at the end of the
 * Period; everything else stays byte for byte. The reader understands MPDs as this engine writes
 * them (one Period, `AdaptationSet` elements not nested, attributes in double quotes).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fragmentSamples, initTrackInfo } from './fmp4.js';

/** `EssentialProperty` scheme of a trick-mode AdaptationSet (DASH-IF IOP 4.3, 3.2.9). */
export const TRICKMODE_SCHEME = 'http://dashif.org/guidelines/trickmode';
/** `EssentialProperty` scheme of a thumbnail tile AdaptationSet (DASH-IF IOP 4.3, 6.2.6). */
export const THUMBNAIL_TILE_SCHEME = 'http://dashif.org/thumbnail_tile';

/** One `<S>` of a `SegmentTimeline`, in the Representation's timescale. */
export interface TimelineRun {
  t: number;
  d: number;
  r: number;
}

/** A Representation of a video AdaptationSet, as {@link readMpdVideoSets} reads it. */
export interface MpdVideoRepresentation {
  id: string;
  /** The Representation's attributes, unescaped. */
  attrs: Record<string, string>;
  /** `SegmentTemplate@timescale` (1 when absent). */
  timescale: number;
  /** Init segment URI, relative to the Period's BaseURL. */
  initialization: string;
  /** Media segment URIs in order, relative to the Period's BaseURL. */
  segments: string[];
  /** The `SegmentTimeline` runs (empty when the template uses `@duration`). */
  timeline: TimelineRun[];
}

/** A video AdaptationSet of an MPD. */
export interface MpdVideoSet {
  /** `@id`, or null when the set has none (it cannot be referenced then). */
  id: string | null;
  /** The `ContentProtection` elements before its first Representation, verbatim. */
  contentProtection: string[];
  representations: MpdVideoRepresentation[];
  /** Representations that could not be read (a template this reader does not expand): id and why. */
  unreadable: { id: string; reason: string }[];
}

function unescapeXml(v: string): string {
  return v
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function escapeXml(v: string | number): string {
  return String(v).replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function attributes(tag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of tag.matchAll(/([\w:.-]+)\s*=\s*"([^"]*)"/g)) out[a[1]!] = unescapeXml(a[2]!);
  return out;
}

/** An AdaptationSet element (self-closing or not) with its line's indentation and end. */
const SET_RE = /[ \t]*<AdaptationSet\b[^>]*?(?:\/>|>[\s\S]*?<\/AdaptationSet>)[ \t]*\r?\n?/g;

/** Expands `$RepresentationID$`, `$Number$`/`$Number%0Nd$`, `$Time$` and `$$` (ISO/IEC 23009-1 5.3.9.4.4). */
function expandTemplate(tmpl: string, id: string, num: number, time: number): string {
  return tmpl.replace(/\$(RepresentationID|Number|Time|Bandwidth)?(?:%0(\d+)d)?\$/g, (all, name, width) => {
    if (name === undefined) return '$';
    if (name === 'RepresentationID') return id;
    if (name === 'Bandwidth') return all;
    const v = String(name === 'Number' ? num : time);
    return width ? v.padStart(Number(width), '0') : v;
  });
}

/** The Period's BaseURL (the first one, before any AdaptationSet), or '' when it has none. */
export function mpdPeriodBase(text: string): string {
  const period = /<Period\b[^>]*>([\s\S]*?)(<AdaptationSet\b|<\/Period>)/.exec(text);
  const m = period ? /<BaseURL>([^<]*)<\/BaseURL>/.exec(period[1]!) : null;
  return m ? unescapeXml(m[1]!.trim()) : '';
}

/**
 * Reads the video AdaptationSets of an MPD (`contentType="video"` or a `video/` mimeType), other
 * than trick-mode sets, and the segment URIs of their Representations from each
 * `SegmentTemplate` + `SegmentTimeline` (the form workflows/handlers/lib/cmaf.ts writes; a
 * template on the AdaptationSet is inherited).
 * @returns the sets in document order; a Representation whose segments cannot be listed (no
 *   SegmentTemplate, `$Bandwidth$`, `@duration` without a timeline) is named in `unreadable`.
 */
export function readMpdVideoSets(text: string): MpdVideoSet[] {
  const out: MpdVideoSet[] = [];
  for (const m of text.matchAll(SET_RE)) {
    const block = m[0];
    if (block.includes(TRICKMODE_SCHEME) || block.includes(THUMBNAIL_TILE_SCHEME)) continue;
    const open = /<AdaptationSet\b[^>]*>/.exec(block)![0];
    const setAttrs = attributes(open);
    if (setAttrs.contentType !== 'video' && !(setAttrs.mimeType ?? '').startsWith('video/')) continue;
    const firstRep = block.search(/<Representation\b/);
    const head = firstRep < 0 ? block : block.slice(0, firstRep);
    const contentProtection = [
      ...head.matchAll(/<ContentProtection\b[^>]*?(?:\/>|>[\s\S]*?<\/ContentProtection>)/g),
    ].map((x) => x[0]);
    const templateRe = /<SegmentTemplate\b[^>]*?(?:\/>|>[\s\S]*?<\/SegmentTemplate>)/;
    const setTemplate = templateRe.exec(head)?.[0];
    const set: MpdVideoSet = {
      id: setAttrs.id ?? null,
      contentProtection,
      representations: [],
      unreadable: [],
    };
    for (const r of block.matchAll(/<Representation\b[^>]*?(?:\/>|>[\s\S]*?<\/Representation>)/g)) {
      const repText = r[0];
      const attrs = attributes(/<Representation\b[^>]*>/.exec(repText)![0]);
      const id = attrs.id ?? '';
      const tmplMatch = templateRe.exec(repText)?.[0] ?? setTemplate;
      if (!tmplMatch) {
        set.unreadable.push({ id, reason: 'no SegmentTemplate' });
        continue;
      }
      const t = attributes(/<SegmentTemplate\b[^>]*>/.exec(tmplMatch)![0]);
      if (!t.initialization || !t.media) {
        set.unreadable.push({ id, reason: 'SegmentTemplate without initialization or media' });
        continue;
      }
      if (/\$Bandwidth/.test(t.media) || /\$(Number|Time|Bandwidth)/.test(t.initialization)) {
        set.unreadable.push({ id, reason: `template ${t.media} is not expanded here` });
        continue;
      }
      const timeline: TimelineRun[] = [];
      for (const s of tmplMatch.matchAll(/<S\b[^>]*\/?>/g)) {
        const a = attributes(s[0]);
        const prev = timeline.at(-1);
        const start = a.t !== undefined ? Number(a.t) : prev ? prev.t + prev.d * (prev.r + 1) : 0;
        timeline.push({ t: start, d: Number(a.d), r: Number(a.r ?? 0) });
      }
      if (timeline.length === 0 || timeline.some((x) => x.r < 0)) {
        set.unreadable.push({ id, reason: 'no SegmentTimeline with explicit repeats' });
        continue;
      }
      const startNumber = Number(t.startNumber ?? 1);
      const segments: string[] = [];
      let n = startNumber;
      for (const run of timeline)
        for (let i = 0; i <= run.r; i++) segments.push(expandTemplate(t.media, id, n++, run.t + i * run.d));
      set.representations.push({
        id,
        attrs,
        timescale: Number(t.timescale ?? 1),
        initialization: expandTemplate(t.initialization, id, startNumber, 0),
        segments,
        timeline,
      });
    }
    out.push(set);
  }
  return out;
}

/** One key-frame range of a trick-mode Representation. */
export interface TrickSegment {
  /** The segment file, as the MPD names it (relative to the Period's BaseURL). */
  uri: string;
  /** Byte offset of the range in the file (the `moof`). */
  offset: number;
  /** Bytes (the `moof`, the `mdat` header and the key frame). */
  length: number;
  /** Decode time of the key frame, in the track's timescale. */
  start: number;
  /** Until the next key frame (or the end of the last sample), in the track's timescale. */
  duration: number;
  /** Samples from this key frame to the next one (or the end). */
  frames: number;
}

/**
 * The key-frame ranges of an fMP4 Representation: one per fragment whose first sample is a sync
 * sample (src/media/fmp4.ts `fragmentSamples`, the same rule as the HLS I-frame playlists).
 * @param base absolute folder the URIs are relative to (the Period's BaseURL resolved).
 * @returns the track's timescale (its `mdhd`), the ranges, and `leftOut`: key frames inside a
 *   fragment (not its first sample), which no range can hold alone.
 * @throws Error when a file is missing or its boxes are truncated.
 */
export async function fmp4TrickSegments(
  base: string,
  initialization: string,
  segments: string[],
): Promise<{ timescale: number; segments: TrickSegment[]; leftOut: number }> {
  const { timescale, trex } = initTrackInfo(await readFile(path.resolve(base, initialization)));
  const keys: TrickSegment[] = [];
  let leftOut = 0;
  let end = 0;
  for (const uri of segments) {
    const buf = await readFile(path.resolve(base, uri));
    for (const frag of fragmentSamples(buf, trex)) {
      const head = frag.samples[0];
      if (!head) continue;
      for (const [i, s] of frag.samples.entries()) {
        if (i === 0 && s.sync)
          keys.push({
            uri,
            offset: frag.moofStart,
            length: head.offset + head.size - frag.moofStart,
            start: head.decodeTime,
            duration: 0,
            frames: 1,
          });
        else {
          if (s.sync) leftOut += 1;
          const last = keys.at(-1);
          if (last) last.frames += 1;
        }
        end = s.decodeTime + s.duration;
      }
    }
  }
  for (const [i, k] of keys.entries())
    k.duration = (i + 1 < keys.length ? keys[i + 1]!.start : end) - k.start;
  return { timescale, segments: keys, leftOut };
}

/** What {@link writeMpdTrickplay} adds for one video AdaptationSet. */
export interface TrickModeSet {
  /** The main AdaptationSet's `@id`. */
  mainId: string;
  contentProtection: string[];
  representations: {
    main: MpdVideoRepresentation;
    timescale: number;
    /** Init segment URI, relative to the Period's BaseURL. */
    initialization: string;
    segments: TrickSegment[];
  }[];
}

/** The thumbnail sheets for {@link writeMpdTrickplay}. */
export interface ThumbnailTiles {
  /** Sheet URI template relative to the Period's BaseURL, `$Number%05d$` where the number goes. */
  media: string;
  /** Number of the first sheet. */
  startNumber: number;
  /** Sheets written. */
  sheets: number;
  columns: number;
  rows: number;
  /** One thumbnail, pixels. */
  tileWidth: number;
  tileHeight: number;
  /** Seconds between thumbnails. */
  interval: number;
  /** Largest sheet, bytes (for `@bandwidth`). */
  maxSheetBytes: number;
}

/** `SegmentTimeline` runs (`<S t d r>`) of consecutive segments. */
function runsOf(segments: { start: number; duration: number }[]): TimelineRun[] {
  const runs: TimelineRun[] = [];
  for (const s of segments) {
    const last = runs.at(-1);
    if (last && last.d === s.duration && last.t + last.d * (last.r + 1) === s.start) last.r += 1;
    else runs.push({ t: s.start, d: s.duration, r: 0 });
  }
  return runs;
}

/** The `@maxPlayoutRate` of a trick-mode Representation: frames per key frame, the fewest of all ranges but the last. */
export function maxPlayoutRate(segments: TrickSegment[]): number {
  const counts = (segments.length > 1 ? segments.slice(0, -1) : segments).map((s) => s.frames);
  return Math.max(1, Math.min(...counts));
}

/** The `@bandwidth` of a trick-mode Representation: the peak bits per second of its ranges. */
export function trickBandwidth(segments: TrickSegment[], timescale: number): number {
  return Math.max(
    1,
    ...segments.map((s) => Math.round((s.length * 8 * timescale) / Math.max(1, s.duration))),
  );
}

function trickSetXml(id: number, s: TrickModeSet): string {
  const width = Math.max(0, ...s.representations.map((r) => Number(r.main.attrs.width ?? 0)));
  const height = Math.max(0, ...s.representations.map((r) => Number(r.main.attrs.height ?? 0)));
  const lines = [
    `    <AdaptationSet id="${id}" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1"${width ? ` maxWidth="${width}"` : ''}${height ? ` maxHeight="${height}"` : ''}>`,
    ...s.contentProtection.map((c) => `      ${c}`),
    `      <EssentialProperty schemeIdUri="${TRICKMODE_SCHEME}" value="${escapeXml(s.mainId)}"/>`,
  ];
  for (const r of s.representations) {
    const a = r.main.attrs;
    const keep = ['codecs', 'width', 'height', 'sar']
      .filter((k) => a[k] !== undefined)
      .map((k) => ` ${k}="${escapeXml(a[k]!)}"`)
      .join('');
    lines.push(
      `      <Representation id="${escapeXml(`${r.main.id}_trick`)}" bandwidth="${trickBandwidth(r.segments, r.timescale)}"${keep} maxPlayoutRate="${maxPlayoutRate(r.segments)}" codingDependency="false">`,
      `        <SegmentList timescale="${r.timescale}">`,
      `          <Initialization sourceURL="${escapeXml(r.initialization)}"/>`,
      `          <SegmentTimeline>${runsOf(r.segments)
        .map((x) => `<S t="${x.t}" d="${x.d}"${x.r ? ` r="${x.r}"` : ''}/>`)
        .join('')}</SegmentTimeline>`,
      ...r.segments.map(
        (x) =>
          `          <SegmentURL media="${escapeXml(x.uri)}" mediaRange="${x.offset}-${x.offset + x.length - 1}"/>`,
      ),
      '        </SegmentList>',
      '      </Representation>',
    );
  }
  lines.push('    </AdaptationSet>');
  return lines.join('\n');
}

/** Timescale of the thumbnail SegmentTemplate: milliseconds. */
const THUMB_TIMESCALE = 1000;

function thumbSetXml(id: number, t: ThumbnailTiles): string {
  const duration = Math.round(t.columns * t.rows * t.interval * THUMB_TIMESCALE);
  const w = t.columns * t.tileWidth;
  const h = t.rows * t.tileHeight;
  const bandwidth = Math.max(1, Math.round((t.maxSheetBytes * 8 * THUMB_TIMESCALE) / duration));
  return [
    `    <AdaptationSet id="${id}" contentType="image" mimeType="image/jpeg">`,
    `      <SegmentTemplate media="${escapeXml(t.media)}" timescale="${THUMB_TIMESCALE}" duration="${duration}" startNumber="${t.startNumber}"/>`,
    `      <Representation id="thumbnails_${t.tileWidth}x${t.tileHeight}" bandwidth="${bandwidth}" width="${w}" height="${h}">`,
    `        <EssentialProperty schemeIdUri="${THUMBNAIL_TILE_SCHEME}" value="${t.columns}x${t.rows}"/>`,
    '      </Representation>',
    '    </AdaptationSet>',
  ].join('\n');
}

/**
 * Rewrites an MPD with trick-mode AdaptationSets and a thumbnail tile AdaptationSet: sets added
 * before (recognised by {@link TRICKMODE_SCHEME} / {@link THUMBNAIL_TILE_SCHEME}) are removed, the
 * new ones go before `</Period>` with ids after the largest numeric AdaptationSet id.
 * @returns the new MPD text (equal to `text` when nothing changes).
 * @throws Error when the MPD has no `</Period>` or more than one Period.
 */
export function writeMpdTrickplay(
  text: string,
  trick: TrickModeSet[],
  thumbnails: ThumbnailTiles | null,
): string {
  if ((text.match(/<Period\b/g) ?? []).length !== 1) throw new Error('the MPD must have exactly one Period');
  const kept = text.replace(SET_RE, (block) =>
    block.includes(TRICKMODE_SCHEME) || block.includes(THUMBNAIL_TILE_SCHEME) ? '' : block,
  );
  let next =
    Math.max(-1, ...[...kept.matchAll(/<AdaptationSet\b[^>]*?\bid="(\d+)"/g)].map((m) => Number(m[1]))) + 1;
  const sets = trick.filter((s) => s.representations.length > 0).map((s) => trickSetXml(next++, s));
  if (thumbnails && thumbnails.sheets > 0) sets.push(thumbSetXml(next++, thumbnails));
  const at = kept.lastIndexOf('</Period>');
  if (at < 0) throw new Error('the MPD has no </Period>');
  const lineStart = kept.lastIndexOf('\n', at) + 1;
  const indent = /^[ \t]*$/.test(kept.slice(lineStart, at)) ? lineStart : at;
  return sets.length ? `${kept.slice(0, indent)}${sets.join('\n')}\n${kept.slice(indent)}` : kept;
}
