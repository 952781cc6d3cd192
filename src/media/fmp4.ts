/**
 * Fragmented MP4 (ISO/IEC 14496-12) for CMAF packaging: splitting one fragmented file into an init
 * segment and media segments, reading each fragment's timing, and Common Encryption
 * (ISO/IEC 23001-7, scheme `cenc`, AES-128-CTR) of the samples — FFmpeg 5.1 writes the per-sample
 * IVs of fragmented CENC output into the empty `moov` instead of each fragment, so the engine
 * encrypts the fragments itself.
 */
import { createCipheriv, randomBytes } from 'node:crypto';

/** A box: its type and where it lies in the buffer (`start` = size field, `end` exclusive). */
export interface Box {
  type: string;
  start: number;
  /** Offset of the payload (after the size and type, and the 64-bit size when present). */
  body: number;
  end: number;
}

/** The boxes found in `buf` between `from` and `to`. @throws Error for a truncated box. */
export function readBoxes(buf: Buffer, from = 0, to = buf.length): Box[] {
  const out: Box[] = [];
  let o = from;
  while (o + 8 <= to) {
    let size = buf.readUInt32BE(o);
    const type = buf.toString('latin1', o + 4, o + 8);
    let body = o + 8;
    if (size === 1) {
      size = Number(buf.readBigUInt64BE(o + 8));
      body = o + 16;
    } else if (size === 0) size = to - o;
    if (size < 8 || o + size > to) throw new Error(`truncated MP4 box ${type} at ${o}`);
    out.push({ type, start: o, body, end: o + size });
    o += size;
  }
  return out;
}

/** The first child box of `type`, or undefined. */
export function child(buf: Buffer, parent: Box | null, type: string): Box | undefined {
  return readBoxes(buf, parent ? parent.body : 0, parent ? parent.end : buf.length).find(
    (b) => b.type === type,
  );
}

/** The box at a path such as `moov/trak/mdia/mdhd`. */
export function find(buf: Buffer, pathText: string): Box | undefined {
  let cur: Box | null = null;
  for (const t of pathText.split('/')) {
    const next = child(buf, cur, t);
    if (!next) return undefined;
    cur = next;
  }
  return cur ?? undefined;
}

function box(type: string, ...parts: Buffer[]): Buffer {
  const payload = Buffer.concat(parts);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(8 + payload.length, 0);
  head.write(type, 4, 'latin1');
  return Buffer.concat([head, payload]);
}

function fullBox(type: string, version: number, flags: number, ...parts: Buffer[]): Buffer {
  const vf = Buffer.alloc(4);
  vf.writeUInt32BE(((version & 0xff) << 24) | (flags & 0xffffff), 0);
  return box(type, vf, ...parts);
}

/** One media segment cut from a fragmented MP4: `moof` + `mdat` bytes and its timing. */
export interface Fragment {
  bytes: Buffer;
  /** `tfdt` base media decode time, in the track's timescale. */
  start: number;
  /** Sum of its sample durations, in the track's timescale. */
  duration: number;
}

/** A fragmented MP4 split for CMAF. */
export interface SplitMp4 {
  /** `ftyp` + `moov`. */
  init: Buffer;
  /** The track's timescale (`mdhd`). */
  timescale: number;
  fragments: Fragment[];
}

interface TrafInfo {
  traf: Box;
  trun: Box;
  flags: number;
  sampleCount: number;
  dataOffset: number;
  sizes: number[];
  durations: number[];
  /** Sample flags (ISO/IEC 14496-12 8.8.3.1); bit 0x10000 = not a sync sample. */
  sampleFlags: number[];
  tfdt: number;
}

function readTraf(
  buf: Buffer,
  moof: Box,
  trex: { duration: number; size: number; flags?: number },
): TrafInfo {
  const traf = child(buf, moof, 'traf');
  if (!traf) throw new Error('moof without traf');
  const tfhd = child(buf, traf, 'tfhd')!;
  const tfhdFlags = buf.readUInt32BE(tfhd.body) & 0xffffff;
  let o = tfhd.body + 8;
  if (tfhdFlags & 0x01) o += 8;
  if (tfhdFlags & 0x02) o += 4;
  let defDuration = trex.duration;
  let defSize = trex.size;
  let defFlags = trex.flags ?? 0;
  if (tfhdFlags & 0x08) {
    defDuration = buf.readUInt32BE(o);
    o += 4;
  }
  if (tfhdFlags & 0x10) {
    defSize = buf.readUInt32BE(o);
    o += 4;
  }
  if (tfhdFlags & 0x20) defFlags = buf.readUInt32BE(o);
  const tfdtBox = child(buf, traf, 'tfdt');
  let tfdt = 0;
  if (tfdtBox)
    tfdt =
      buf[tfdtBox.body] === 1
        ? Number(buf.readBigUInt64BE(tfdtBox.body + 4))
        : buf.readUInt32BE(tfdtBox.body + 4);
  const trun = child(buf, traf, 'trun');
  if (!trun) throw new Error('traf without trun');
  const flags = buf.readUInt32BE(trun.body) & 0xffffff;
  const sampleCount = buf.readUInt32BE(trun.body + 4);
  let p = trun.body + 8;
  let dataOffset = 0;
  if (flags & 0x01) {
    dataOffset = buf.readInt32BE(p);
    p += 4;
  }
  let firstFlags: number | null = null;
  if (flags & 0x04) {
    firstFlags = buf.readUInt32BE(p);
    p += 4;
  }
  const sizes: number[] = [];
  const durations: number[] = [];
  const sampleFlags: number[] = [];
  for (let i = 0; i < sampleCount; i++) {
    let d = defDuration;
    let s = defSize;
    let f = i === 0 && firstFlags !== null ? firstFlags : defFlags;
    if (flags & 0x100) {
      d = buf.readUInt32BE(p);
      p += 4;
    }
    if (flags & 0x200) {
      s = buf.readUInt32BE(p);
      p += 4;
    }
    if (flags & 0x400) {
      f = buf.readUInt32BE(p);
      p += 4;
    }
    if (flags & 0x800) p += 4;
    durations.push(d);
    sizes.push(s);
    sampleFlags.push(f);
  }
  return { traf, trun, flags, sampleCount, dataOffset, sizes, durations, sampleFlags, tfdt };
}

function trexDefaults(buf: Buffer, moov: Box): { duration: number; size: number; flags: number } {
  const trex = child(buf, child(buf, moov, 'mvex') ?? null, 'trex');
  if (!trex) return { duration: 0, size: 0, flags: 0 };
  return {
    duration: buf.readUInt32BE(trex.body + 12),
    size: buf.readUInt32BE(trex.body + 16),
    flags: buf.readUInt32BE(trex.body + 20),
  };
}

/** One sample of a fragment, as {@link fragmentSamples} lists it. */
export interface FragmentSample {
  /** Byte offset of the sample's data in the buffer given. */
  offset: number;
  /** Bytes. */
  size: number;
  /** Decode time (`tfdt` plus the durations before it), in the track's timescale. */
  decodeTime: number;
  /** Duration, in the track's timescale. */
  duration: number;
  /** A sync sample (key frame): `sample_is_non_sync_sample` clear. */
  sync: boolean;
}

/** The timescale (`mdhd`) of a single-track init segment, and its `trex` defaults. */
export function initTrackInfo(init: Buffer): {
  timescale: number;
  trex: { duration: number; size: number; flags: number };
} {
  const moov = find(init, 'moov');
  const mdhd = find(init, 'moov/trak/mdia/mdhd');
  if (!moov || !mdhd) throw new Error('not an MP4 init segment (no moov/trak/mdia/mdhd)');
  return {
    timescale: init.readUInt32BE(mdhd.body + (init[mdhd.body] === 1 ? 20 : 12)),
    trex: trexDefaults(init, moov),
  };
}

/**
 * The fragments of an fMP4 media segment (top-level `moof` + `mdat` pairs, `styp`/`sidx` before
 * them skipped) with their samples, read from the first `traf`'s `tfhd`/`tfdt`/`trun` (sample
 * sizes, durations and flags; defaults from `trex` of the init segment).
 * @param trex the init segment's defaults ({@link initTrackInfo}).
 * @returns per fragment: where its `moof` starts, where its `mdat` ends (exclusive), and the samples.
 * @throws Error for a truncated box or a `moof` not followed by an `mdat`.
 */
export function fragmentSamples(
  buf: Buffer,
  trex: { duration: number; size: number; flags: number },
): { moofStart: number; mdatEnd: number; samples: FragmentSample[] }[] {
  const top = readBoxes(buf);
  const out: { moofStart: number; mdatEnd: number; samples: FragmentSample[] }[] = [];
  for (const [i, moof] of top.entries()) {
    if (moof.type !== 'moof') continue;
    const mdat = top.slice(i + 1).find((b) => b.type === 'mdat' || b.type === 'moof');
    if (!mdat || mdat.type !== 'mdat') throw new Error(`moof at ${moof.start} without a following mdat`);
    const t = readTraf(buf, moof, trex);
    // default-base-is-moof (or no base offset given): data offsets count from the moof's start.
    let p = moof.start + (t.flags & 0x01 ? t.dataOffset : mdat.body - moof.start);
    let time = t.tfdt;
    const samples: FragmentSample[] = [];
    for (let k = 0; k < t.sampleCount; k++) {
      samples.push({
        offset: p,
        size: t.sizes[k]!,
        decodeTime: time,
        duration: t.durations[k]!,
        sync: (t.sampleFlags[k]! & 0x10000) === 0,
      });
      p += t.sizes[k]!;
      time += t.durations[k]!;
    }
    out.push({ moofStart: moof.start, mdatEnd: mdat.end, samples });
  }
  return out;
}

/**
 * Splits a single-track fragmented MP4 (as FFmpeg writes with
 * `-movflags +frag_keyframe+empty_moov+default_base_moof`) into its init segment and one media
 * segment per `moof`/`mdat` pair. Boxes after the last fragment (`mfra`) are dropped.
 * @throws Error when the file is not fragmented or has more than one track.
 */
export function splitFragmented(buf: Buffer): SplitMp4 {
  const top = readBoxes(buf);
  const moov = top.find((b) => b.type === 'moov');
  const firstMoof = top.findIndex((b) => b.type === 'moof');
  if (!moov || firstMoof < 0) throw new Error('not a fragmented MP4 (no moov or no moof)');
  if (readBoxes(buf, moov.body, moov.end).filter((b) => b.type === 'trak').length !== 1)
    throw new Error('a CMAF track file must hold exactly one track');
  const init = Buffer.concat(top.slice(0, firstMoof).map((b) => buf.subarray(b.start, b.end)));
  const mdhd = find(buf, 'moov/trak/mdia/mdhd')!;
  const timescale = buf.readUInt32BE(mdhd.body + (buf[mdhd.body] === 1 ? 20 : 12));
  const trex = trexDefaults(buf, moov);
  const fragments: Fragment[] = [];
  for (let i = firstMoof; i < top.length; i++) {
    const moof = top[i]!;
    if (moof.type !== 'moof') continue;
    const mdat = top[i + 1];
    if (!mdat || mdat.type !== 'mdat') throw new Error('moof without a following mdat');
    const t = readTraf(buf, moof, trex);
    fragments.push({
      bytes: Buffer.from(buf.subarray(moof.start, mdat.end)),
      start: t.tfdt,
      duration: t.durations.reduce((a, b) => a + b, 0),
    });
  }
  return { init, timescale, fragments };
}

/** The W3C Common PSSH system id (used by ClearKey, https://www.w3.org/TR/eme-initdata-cenc/). */
export const CLEARKEY_SYSTEM_ID = '1077efecc0b24d02ace33c1e52e2fb4b';

/** A version-1 `pssh` box for the W3C Common (ClearKey) system listing `kids` (hex). */
export function clearKeyPssh(kids: string[]): Buffer {
  const count = Buffer.alloc(4);
  count.writeUInt32BE(kids.length, 0);
  return fullBox(
    'pssh',
    1,
    0,
    Buffer.from(CLEARKEY_SYSTEM_ID, 'hex'),
    count,
    ...kids.map((k) => Buffer.from(k, 'hex')),
    Buffer.alloc(4),
  );
}

/** Inserts `insert` at `at` and grows the 32-bit sizes of the boxes in `ancestors` by its length. */
function insertInto(buf: Buffer, at: number, insert: Buffer, ancestors: Box[]): Buffer {
  const out = Buffer.concat([buf.subarray(0, at), insert, buf.subarray(at)]);
  for (const a of ancestors) {
    if (a.body - a.start !== 8) throw new Error(`64-bit box size of ${a.type} is not supported here`);
    out.writeUInt32BE(out.readUInt32BE(a.start) + insert.length, a.start);
  }
  return out;
}

/**
 * Turns a clear init segment into a CENC one: the sample entry (`avc1`, `mp4a`, …) becomes
 * `encv`/`enca` with a `sinf` (`frma` = the original format, `schm` = `cenc` 1.0, `tenc` with
 * the default KID and 8-byte per-sample IVs), and a ClearKey `pssh` is added to `moov`.
 */
export function encryptInit(init: Buffer, kidHex: string): Buffer {
  let buf = init;
  const moov = find(buf, 'moov')!;
  const trak = child(buf, moov, 'trak')!;
  const mdia = child(buf, trak, 'mdia')!;
  const minf = child(buf, mdia, 'minf')!;
  const stbl = child(buf, minf, 'stbl')!;
  const stsd = child(buf, stbl, 'stsd')!;
  const entry = readBoxes(buf, stsd.body + 8, stsd.end)[0];
  if (!entry) throw new Error('stsd without a sample entry');
  const original = entry.type;
  const isVideo = child(buf, minf, 'vmhd') !== undefined;
  const tencBody = Buffer.concat([Buffer.from([0, 0, 1, 8]), Buffer.from(kidHex, 'hex')]);
  const schmBody = Buffer.alloc(8);
  schmBody.write('cenc', 0, 'latin1');
  schmBody.writeUInt32BE(0x00010000, 4);
  const sinf = box(
    'sinf',
    box('frma', Buffer.from(original, 'latin1')),
    fullBox('schm', 0, 0, schmBody),
    box('schi', fullBox('tenc', 0, 0, tencBody)),
  );
  buf = insertInto(buf, entry.end, sinf, [moov, trak, mdia, minf, stbl, stsd, entry]);
  buf.write(isVideo ? 'encv' : 'enca', entry.start + 4, 'latin1');
  const moov2 = find(buf, 'moov')!;
  return insertInto(buf, moov2.end, clearKeyPssh([kidHex]), [moov2]);
}

/**
 * The clear/protected split of an AVC sample (4-byte NAL lengths): NAL length and header stay
 * clear; a slice NAL's payload is encrypted in whole 16-byte blocks (the rest stays clear, as
 * ISO/IEC 23001-7 10.2 recommends); other NAL units stay clear.
 */
function avcSubsamples(sample: Buffer): [number, number][] {
  const out: [number, number][] = [];
  let o = 0;
  let clear = 0;
  while (o + 4 <= sample.length) {
    const len = sample.readUInt32BE(o);
    const type = (sample[o + 4] ?? 0) & 0x1f;
    const total = 4 + len;
    if (type >= 1 && type <= 5 && len > 17) {
      const prot = Math.floor((len - 1) / 16) * 16;
      clear += total - prot;
      while (clear > 0xffff) {
        out.push([0xffff, 0]);
        clear -= 0xffff;
      }
      out.push([clear, prot]);
      clear = 0;
    } else clear += total;
    o += total;
  }
  if (clear > 0) {
    while (clear > 0xffff) {
      out.push([0xffff, 0]);
      clear -= 0xffff;
    }
    out.push([clear, 0]);
  }
  return out;
}

/**
 * Encrypts one media segment (`moof` + `mdat`) with AES-128-CTR (`cenc`): a random 8-byte IV per
 * sample, video by subsamples, audio whole; writes `saiz`, `saio` and `senc` into the `traf` and
 * moves `trun`'s data offset by the bytes added.
 * @param isVideo AVC samples with 4-byte NAL lengths (subsample encryption) when true.
 */
export function encryptFragment(segment: Buffer, key: Buffer, isVideo: boolean): Buffer {
  const buf = Buffer.from(segment);
  const [moof, mdat] = readBoxes(buf);
  if (!moof || moof.type !== 'moof' || !mdat || mdat.type !== 'mdat')
    throw new Error('not a moof+mdat segment');
  const t = readTraf(buf, moof, { duration: 0, size: 0 });
  if (!(t.flags & 0x01)) throw new Error('trun without a data offset');
  let p = moof.start + t.dataOffset;
  const entries: Buffer[] = [];
  const infoSizes: number[] = [];
  for (const size of t.sizes) {
    const sample = buf.subarray(p, p + size);
    const iv = randomBytes(8);
    const cipher = createCipheriv('aes-128-ctr', key, Buffer.concat([iv, Buffer.alloc(8)]));
    if (isVideo) {
      const subs = avcSubsamples(sample);
      let q = 0;
      const head = Buffer.alloc(2);
      head.writeUInt16BE(subs.length, 0);
      const parts = [iv, head];
      for (const [c, e] of subs) {
        q += c;
        if (e > 0) cipher.update(sample.subarray(q, q + e)).copy(sample, q);
        q += e;
        const b = Buffer.alloc(6);
        b.writeUInt16BE(c, 0);
        b.writeUInt32BE(e, 2);
        parts.push(b);
      }
      const entry = Buffer.concat(parts);
      entries.push(entry);
      infoSizes.push(entry.length);
    } else {
      cipher.update(sample).copy(sample, 0);
      entries.push(iv);
      infoSizes.push(8);
    }
    p += size;
  }
  const count = Buffer.alloc(4);
  count.writeUInt32BE(t.sampleCount, 0);
  const same = infoSizes.every((s) => s === infoSizes[0]);
  const saiz = fullBox(
    'saiz',
    0,
    0,
    Buffer.from([same ? (infoSizes[0] ?? 0) : 0]),
    count,
    ...(same ? [] : [Buffer.from(infoSizes)]),
  );
  const saioLen = 8 + 4 + 4 + 4;
  const senc = fullBox('senc', 0, isVideo ? 0x2 : 0, count, ...entries);
  // senc's first entry lies after saiz, saio and senc's own header (8 + 4 flags + 4 count).
  const sencData = t.traf.end - moof.start + saiz.length + saioLen + 16;
  const off = Buffer.alloc(8);
  off.writeUInt32BE(1, 0);
  off.writeUInt32BE(sencData, 4);
  const saio = fullBox('saio', 0, 0, off);
  const added = Buffer.concat([saiz, saio, senc]);
  const out = insertInto(buf, t.traf.end, added, [moof, t.traf]);
  // trun's data offset (relative to the moof start) moves by the bytes added to the moof.
  out.writeInt32BE(t.dataOffset + added.length, t.trun.body + 8);
  return out;
}

/** The RFC 6381 `avc1.PPCCLL` string of an init segment's `avcC`, or null for other codecs. */
export function avcCodecString(init: Buffer): string | null {
  const stsd = find(init, 'moov/trak/mdia/minf/stbl/stsd');
  if (!stsd) return null;
  const entry = readBoxes(init, stsd.body + 8, stsd.end)[0];
  if (!entry || !['avc1', 'avc3', 'encv'].includes(entry.type)) return null;
  const avcC = readBoxes(init, entry.body + 78, entry.end).find((b) => b.type === 'avcC');
  if (!avcC) return null;
  return `avc1.${init.subarray(avcC.body + 1, avcC.body + 4).toString('hex')}`;
}
