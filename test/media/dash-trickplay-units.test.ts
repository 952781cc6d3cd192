/**
 * The MPD reading and rewriting of src/media/dash-trickplay.ts on hand-written MPDs: template
 * expansion, a template inherited from the AdaptationSet, sets it cannot read, ids, and a rewrite
 * that replaces its own sets and leaves the rest byte for byte.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { XMLValidator } from 'fast-xml-parser';
import {
  maxPlayoutRate,
  mpdPeriodBase,
  readMpdVideoSets,
  trickBandwidth,
  writeMpdTrickplay,
  type TrickModeSet,
} from '../../src/media/dash-trickplay.js';
import trickplay from '../../workflows/handlers/trickplay.js';
import { runHandlerDirect, tempStorageRoot } from './media-helpers.js';

const MPD = `<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT5.000S">
  <Period id="0" start="PT0S">
    <BaseURL>a&amp;b/</BaseURL>
    <AdaptationSet id="7" contentType="video" mimeType="video/mp4">
      <ContentProtection schemeIdUri="urn:mpeg:dash:mp4protection:2011" value="cenc"/>
      <SegmentTemplate timescale="1000" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/t$Time$.m4s">
        <SegmentTimeline><S t="100" d="2000" r="1"/><S d="1000"/></SegmentTimeline>
      </SegmentTemplate>
      <Representation id="hi" bandwidth="900" width="640" height="360" codecs="avc1.64001e"/>
      <Representation id="lo" bandwidth="300" width="320" height="180" codecs="avc1.64000d">
        <SegmentTemplate timescale="90000" initialization="lo/init.mp4" media="lo/s_$Number%03d$.m4s" startNumber="5">
          <SegmentTimeline><S t="0" d="180000" r="2"/></SegmentTimeline>
        </SegmentTemplate>
      </Representation>
      <Representation id="bw" bandwidth="1">
        <SegmentTemplate initialization="bw/init.mp4" media="bw/$Bandwidth$_$Number$.m4s" duration="2"/>
      </Representation>
    </AdaptationSet>
    <AdaptationSet contentType="audio" mimeType="audio/mp4"/>
  </Period>
</MPD>
`;

describe('DASH trick play MPD rewrite', () => {
  it('reads video sets: templates expanded, the set template inherited, the unreadable named', () => {
    assert.equal(mpdPeriodBase(MPD), 'a&b/');
    const [set, ...rest] = readMpdVideoSets(MPD);
    assert.equal(rest.length, 0, 'the audio set is not a video set');
    assert.equal(set!.id, '7');
    assert.deepEqual(set!.contentProtection, [
      '<ContentProtection schemeIdUri="urn:mpeg:dash:mp4protection:2011" value="cenc"/>',
    ]);
    const [hi, lo] = set!.representations;
    assert.deepEqual(hi!.segments, ['hi/t100.m4s', 'hi/t2100.m4s', 'hi/t4100.m4s']);
    assert.equal(hi!.initialization, 'hi/init.mp4');
    assert.equal(hi!.timescale, 1000);
    assert.deepEqual(lo!.segments, ['lo/s_005.m4s', 'lo/s_006.m4s', 'lo/s_007.m4s']);
    assert.equal(lo!.timescale, 90000);
    assert.deepEqual(
      set!.unreadable.map((u) => u.id),
      ['bw'],
    );
  });

  it('adds the sets at the end of the Period, replaces its own sets and keeps the rest byte for byte', () => {
    const [set] = readMpdVideoSets(MPD);
    const hi = set!.representations[0]!;
    const segments = [
      { uri: 'hi/t100.m4s', offset: 0, length: 1000, start: 100, duration: 2000, frames: 50 },
      { uri: 'hi/t2100.m4s', offset: 0, length: 3000, start: 2100, duration: 2000, frames: 50 },
      { uri: 'hi/t4100.m4s', offset: 8, length: 500, start: 4100, duration: 1000, frames: 25 },
    ];
    assert.equal(maxPlayoutRate(segments), 50, 'the short last range does not count');
    assert.equal(trickBandwidth(segments, 1000), 12000);
    const trick: TrickModeSet[] = [
      {
        mainId: '7',
        contentProtection: set!.contentProtection,
        representations: [{ main: hi, timescale: 1000, initialization: 'hi/init.mp4', segments }],
      },
    ];
    const tiles = {
      media: '../thumbs/sheet_$Number%05d$.jpg',
      startNumber: 1,
      sheets: 1,
      columns: 5,
      rows: 2,
      tileWidth: 64,
      tileHeight: 36,
      interval: 0.5,
      maxSheetBytes: 5000,
    };
    const once = writeMpdTrickplay(MPD, trick, tiles);
    assert.equal(XMLValidator.validate(once), true);
    assert.ok(once.startsWith(MPD.slice(0, MPD.indexOf('  </Period>'))), 'everything before stays as it was');
    assert.match(
      once,
      /<AdaptationSet id="8" contentType="video"[^>]*>\n {6}<ContentProtection[^>]*value="cenc"\/>\n {6}<EssentialProperty schemeIdUri="http:\/\/dashif.org\/guidelines\/trickmode" value="7"\/>/,
    );
    assert.match(
      once,
      /<SegmentTimeline><S t="100" d="2000" r="1"\/><S t="4100" d="1000"\/><\/SegmentTimeline>/,
    );
    assert.match(once, /<SegmentURL media="hi\/t4100.m4s" mediaRange="8-507"\/>/);
    assert.match(
      once,
      /<AdaptationSet id="9" contentType="image" mimeType="image\/jpeg">\n {6}<SegmentTemplate media="..\/thumbs\/sheet_\$Number%05d\$.jpg" timescale="1000" duration="5000" startNumber="1"\/>\n {6}<Representation id="thumbnails_64x36" bandwidth="8000" width="320" height="72">/,
    );
    assert.equal(writeMpdTrickplay(once, trick, tiles), once, 'running again gives the same MPD');
    assert.equal(readMpdVideoSets(once).length, 1, 'a trick-mode set is not read as a main set');
    assert.equal(writeMpdTrickplay(once, [], null), MPD, 'without sets to add, the MPD is what it was');
    assert.throws(() =>
      writeMpdTrickplay(MPD.replace('</Period>', '</Period><Period id="1"></Period>'), trick, null),
    );
  });

  it('refuses an MPD whose segments lie outside the client storage, before reading them', async () => {
    const root = await tempStorageRoot();
    try {
      const dir = path.join(root.root, 'media-test', 'asset');
      await mkdir(path.join(dir, 'v'), { recursive: true });
      await writeFile(path.join(dir, 'v/init.mp4'), '');
      await writeFile(
        path.join(dir, 'a.mpd'),
        MPD.replace('<BaseURL>a&amp;b/</BaseURL>', '<BaseURL>v/</BaseURL>')
          .replace(
            'media="$RepresentationID$/t$Time$.m4s"',
            'initialization="init.mp4" media="../../../../../../etc/$Time$"',
          )
          .replace('initialization="$RepresentationID$/init.mp4" ', ''),
      );
      await assert.rejects(
        runHandlerDirect(trickplay, {
          storageRoot: root.root,
          parameters: {
            content_id: 'a',
            source_folder: 'asset',
            trickplay_thumbnails: false,
            trickplay_dash_trick_mode: true,
          },
        }),
        /storage path/,
      );
    } finally {
      await root.cleanup();
    }
  });
});
