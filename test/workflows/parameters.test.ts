import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkParameterSchema,
  isStoragePath,
  validateParameters,
  withCommonParameters,
} from '../../src/workflows/parameters.js';
import type { WorkflowDefinition } from '../../src/workflows/types.js';

function definition(parameters: Record<string, unknown>): WorkflowDefinition {
  assert.deepEqual(checkParameterSchema(parameters), [], 'the test schema itself must be sound');
  return { name: 'test', parameters, tasks: [{ name: 'a', run: 'sleep', needs: [], queue: 'work' }] };
}

const media = definition(
  withCommonParameters({
    type: 'object',
    required: ['content_id', 'source_folder'],
    additionalProperties: false,
    properties: {
      content_id: { type: 'string' },
      source_folder: { type: 'string', format: 'storage-path' },
      output_folder: { type: 'string', format: 'storage-path', default: '{source_folder}' },
      mp4_filename: { type: 'string', default: '{content_id}.mp4' },
      generate_vod: { type: 'boolean', default: true },
      create_dref: { type: 'boolean', default: '{generate_vod}' },
      label: { type: 'string', default: '{mp4_filename} in {output_folder}' },
      seconds: { type: 'number', default: 1 },
      drm: { type: 'array', items: { enum: ['clear', 'aes'] }, default: ['clear'] },
    },
  }),
);

describe('validateParameters', () => {
  it('timeOrder: the second time must be after the first when both are offsets; UTC times are left to the handler', () => {
    const clips = definition({
      type: 'object',
      properties: {
        clips: {
          type: 'array',
          items: { type: 'object', timeOrder: ['start', 'end'], properties: { start: {}, end: {} } },
        },
      },
    });
    const problems = (list: unknown[]): string[] => {
      const r = validateParameters(clips, { clips: list });
      return r.ok ? [] : r.problems;
    };
    assert.deepEqual(
      problems([{ start: 1, end: 2 }, { start: '0:01', end: '00:00:01.001' }, { end: 3 }]),
      [],
    );
    assert.deepEqual(
      problems([
        { start: 1, end: 2 },
        { start: 2, end: 1 },
      ]),
      ['parameters.clips[1]: end 1 must be after start 2'],
    );
    assert.deepEqual(
      problems([
        { start: '00:01:00', end: '59.5' },
        { start: 5, end: 5 },
      ]),
      [
        'parameters.clips[0]: end "59.5" must be after start "00:01:00"',
        'parameters.clips[1]: end 5 must be after start 5',
      ],
    );
    // A UTC instant and an offset, or a time that does not parse, are not compared here.
    assert.deepEqual(
      problems([
        { start: '2030-01-01T00:00:10Z', end: 1 },
        { start: 'soon', end: 1 },
      ]),
      [],
    );
    assert.match(checkParameterSchema({ type: 'object', timeOrder: ['a'] })[0] ?? '', /timeOrder|usable/);
  });

  it('applies plain defaults and defaults that refer to other parameters, in dependency order', () => {
    const r = validateParameters(media, { content_id: 'c1', source_folder: 'in/c1' });
    assert.ok(r.ok);
    assert.deepEqual(r.resolved, {
      content_id: 'c1',
      source_folder: 'in/c1',
      output_folder: 'in/c1',
      mp4_filename: 'c1.mp4',
      generate_vod: true,
      create_dref: true,
      label: 'c1.mp4 in in/c1',
      seconds: 1,
      drm: ['clear'],
    });
  });

  it('keeps the type of a whole reference and lets submitted values win', () => {
    const r = validateParameters(media, {
      content_id: 'c1',
      source_folder: 'in',
      generate_vod: false,
      mp4_filename: 'x.mp4',
    });
    assert.ok(r.ok);
    assert.equal(r.resolved.create_dref, false);
    assert.equal(r.resolved.mp4_filename, 'x.mp4');
    assert.equal(r.resolved.label, 'x.mp4 in in');
  });

  it('never modifies the submitted object', () => {
    const params = { content_id: 'c1', source_folder: 'in' };
    validateParameters(media, params);
    assert.deepEqual(params, { content_id: 'c1', source_folder: 'in' });
  });

  it('lists every problem, naming each parameter and what is accepted', () => {
    const r = validateParameters(media, {
      seconds: 'five',
      drm: ['playready'],
      extra: 1,
      rest_endpoints: ['ftp://x'],
    });
    assert.ok(!r.ok);
    assert.deepEqual(r.problems.sort(), [
      'parameters.content_id is required',
      'parameters.drm[0] must be one of: "clear", "aes"',
      'parameters.extra is not accepted (accepted: content_id, source_folder, output_folder, mp4_filename, generate_vod, create_dref, label, seconds, drm, rest_endpoints, custom_data)',
      'parameters.rest_endpoints[0] must match pattern "^https?://"',
      'parameters.seconds must be number (got string "five"; a number or a numeric string such as "5" is accepted)',
      'parameters.source_folder is required',
    ]);
  });

  it('coerces nothing but numbers: "true" is not a boolean', () => {
    const d = definition({ type: 'object', properties: { n: { type: 'integer' }, b: { type: 'boolean' } } });
    const r = validateParameters(d, { n: '3', b: 'true' });
    assert.ok(!r.ok);
    assert.deepEqual(r.problems, ['parameters.b must be boolean (got string)']);
  });

  void describe('numeric strings (SPEC section 4, the rule priority follows)', () => {
    const d = definition({
      type: 'object',
      properties: {
        n: { type: 'number', minimum: 0 },
        i: { type: 'integer' },
        s: { type: 'string' },
        ns: { type: ['number', 'string'] },
        list: { type: 'array', items: { type: 'integer' } },
        nested: { type: 'object', properties: { x: { type: 'number' } } },
        either: { anyOf: [{ type: 'integer' }, { type: 'boolean' }] },
        d: { type: 'integer', default: 4 },
      },
    });

    it('reads a numeric string as the number where the schema takes a number, at any depth', () => {
      const submitted = {
        n: ' 2.5 ',
        i: '+3',
        list: ['1', 2, '3e2'],
        nested: { x: '-0.5' },
        either: '7',
        s: '5',
        ns: '6',
      };
      const r = validateParameters(d, submitted);
      assert.deepEqual(r, {
        ok: true,
        resolved: { n: 2.5, i: 3, list: [1, 2, 300], nested: { x: -0.5 }, either: 7, s: '5', ns: '6', d: 4 },
      });
      assert.equal(submitted.n, ' 2.5 ', 'the submitted object is left as sent');
    });

    it('checks the number read against the schema, and names what is accepted', () => {
      const r = validateParameters(d, { n: '-1', i: '2.5', list: ['x'] });
      assert.ok(!r.ok);
      assert.deepEqual(r.problems.sort(), [
        'parameters.i must be integer (got string "2.5"; a number or a numeric string such as "5" is accepted)',
        'parameters.list[0] must be integer (got string "x"; a number or a numeric string such as "5" is accepted)',
        'parameters.n must be >= 0',
      ]);
      for (const text of ['', '0x10', 'Infinity', '.5', '1,5', '2 kg', '1e999']) {
        const bad = validateParameters(d, { n: text });
        assert.equal(bad.ok, false, JSON.stringify(text));
      }
    });

    it('refuses a whole number beyond 2^53 - 1 instead of rounding its digits', () => {
      const r = validateParameters(d, { i: '3544790567247868102', s: '3544790567247868102' });
      assert.ok(!r.ok);
      assert.equal(r.problems.length, 1);
      assert.match(
        r.problems[0]!,
        /^parameters\.i is "3544790567247868102", a whole number beyond ±9007199254740991/,
      );
      assert.deepEqual(validateParameters(d, { s: '3544790567247868102' }), {
        ok: true,
        resolved: { s: '3544790567247868102', d: 4 },
      });
    });
  });

  it('treats missing parameters as {} and rejects non-objects', () => {
    const d = definition({ type: 'object', properties: { n: { type: 'integer', default: 4 } } });
    assert.deepEqual(validateParameters(d, undefined), { ok: true, resolved: { n: 4 } });
    assert.deepEqual(validateParameters(d, [1]), {
      ok: false,
      problems: ['parameters must be an object (got array)'],
    });
    assert.deepEqual(validateParameters(d, 'x'), {
      ok: false,
      problems: ['parameters must be an object (got string)'],
    });
  });

  it('refuses a reference default that cannot be built, naming the parameter and what it needs', () => {
    const d = definition({
      type: 'object',
      properties: {
        a: { type: 'string' },
        b: { type: 'string', default: '{a}.txt' },
        c: { type: 'string', default: '{a}-{a}' },
        e: { type: 'string', default: 'x' },
        f: { type: 'string', default: '{e}/{a}' },
      },
    });
    assert.deepEqual(validateParameters(d, {}), {
      ok: false,
      problems: [
        'parameters.b has no value: its default "{a}.txt" is built from parameters.a, which was not given; give a or b',
        'parameters.c has no value: its default "{a}-{a}" is built from parameters.a, which was not given; give a or c',
        'parameters.f has no value: its default "{e}/{a}" is built from parameters.a, which was not given; give a or f',
      ],
    });
    assert.deepEqual(validateParameters(d, { b: 'b', c: 'c', f: 'f' }), {
      ok: true,
      resolved: { b: 'b', c: 'c', e: 'x', f: 'f' },
    });
    assert.deepEqual(validateParameters(d, { a: 'q' }), {
      ok: true,
      resolved: { a: 'q', b: 'q.txt', c: 'q-q', e: 'x', f: 'x/q' },
    });
  });

  it('checks a filled reference default against its own schema', () => {
    const d = definition({
      type: 'object',
      properties: { a: { type: 'number' }, b: { type: 'string', default: '{a}' } },
    });
    const r = validateParameters(d, { a: 3 });
    assert.deepEqual(r, { ok: false, problems: ['parameters.b must be string (got integer)'] });
  });

  it('validates storage-path values', () => {
    const r = validateParameters(media, { content_id: 'c', source_folder: '../other-client' });
    assert.deepEqual(r, {
      ok: false,
      problems: [
        "parameters.source_folder must be a path relative to the client's storage folder (no leading /, no .. that climbs out, no backslash, NUL or control characters)",
      ],
    });
  });

  it('works on a definition read back from JSON (a new object)', () => {
    const copy = JSON.parse(JSON.stringify(media)) as WorkflowDefinition;
    const r = validateParameters(copy, { content_id: 'c', source_folder: 's' });
    assert.ok(r.ok);
    assert.equal(r.resolved.mp4_filename, 'c.mp4');
  });
});

describe('isStoragePath', () => {
  it('accepts relative paths that stay inside', () => {
    for (const p of ['a', 'a/b/c.mp4', 'a/../b', './a', 'a b/ü.mp4', 'a/'])
      assert.equal(isStoragePath(p), true, p);
  });
  it('rejects absolute paths, escapes, backslashes, NUL, control characters and the root itself', () => {
    for (const p of [
      '',
      '/etc/passwd',
      '..',
      '../x',
      'a/../../x',
      'a\\b',
      'a\0b',
      'a\nb',
      'C:/x',
      '.',
      'a/..',
      './',
    ])
      assert.equal(isStoragePath(p), false, JSON.stringify(p));
  });
});

describe('checkParameterSchema', () => {
  it('reports schemas that do not compile, unknown references and reference cycles', () => {
    assert.match(
      checkParameterSchema({ type: 'object', properties: { a: { type: 'strin' } } })[0]!,
      /not a usable JSON Schema/,
    );
    assert.match(
      checkParameterSchema({ type: 'object', properties: { a: { tpye: 'string' } } })[0]!,
      /unknown keyword: "tpye"/,
    );
    assert.match(
      checkParameterSchema({ type: 'object', properties: { a: { format: 'no-such' } } })[0]!,
      /unknown format "no-such"/,
    );
    assert.match(checkParameterSchema({ type: 'array' })[0]!, /parameters.type must be "object"/);
    assert.match(
      checkParameterSchema({ type: 'object', properties: { a: { type: 'string', default: '{b}.mp4' } } })[0]!,
      /refers to \{b\}, which is not a declared parameter/,
    );
    assert.deepEqual(
      checkParameterSchema({
        type: 'object',
        properties: {
          a: { type: 'string', default: '{b}' },
          b: { type: 'string', default: 'x{c}' },
          c: { type: 'string', default: '{a}' },
        },
      }),
      ['parameters: defaults refer to each other in a cycle: a -> b -> c -> a'],
    );
  });
});

describe('validateParameters: values PostgreSQL cannot store (QA)', () => {
  const open = definition({ type: 'object' });

  it('refuses NUL characters in values and keys with a problem, not a throw', () => {
    const r = validateParameters(open, { content_id: 'x\u0000y' });
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.problems.some((p) => p.includes('parameters.content_id') && p.includes('NUL')));
    const k = validateParameters(open, { custom_data: { 'a\u0000b': 1 } });
    assert.equal(k.ok, false);
    assert.ok(!k.ok && k.problems.some((p) => p.includes('NUL')));
  });

  it('refuses unpaired surrogates but keeps real astral characters', () => {
    const r = validateParameters(open, { content_id: '\ud800' });
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.problems.some((p) => p.includes('surrogate')));
    const ok = validateParameters(open, { content_id: 'emoji \u{1F600} é' });
    assert.ok(ok.ok);
  });

  it('refuses nesting deeper than the limit without overflowing the stack', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 200_000; i++) deep = [deep];
    const r = validateParameters(open, { custom_data: deep });
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.problems.some((p) => p.includes('nested too deeply')));
    let obj: unknown = 1;
    for (let i = 0; i < 10_000; i++) obj = { a: obj };
    assert.equal(validateParameters(open, { custom_data: obj }).ok, false);
  });

  it('accepts nesting up to the limit', () => {
    let deep: unknown = 'leaf';
    for (let i = 0; i < 90; i++) deep = { a: deep };
    assert.ok(validateParameters(open, { custom_data: deep }).ok);
  });
});

describe('validateParameters: the resolved copy', () => {
  const open = definition({ type: 'object' });

  it('is a deep copy equal to the input: nested objects and arrays are new, holes and a "__proto__" key are kept', () => {
    // eslint-disable-next-line no-sparse-arrays -- a hole must stay a hole, as structuredClone keeps it
    const sparse = [1, , 3];
    const input = JSON.parse(
      '{"content_id":"c","custom_data":{"list":[{"a":1},[2,[3]],null,true,-0.5,"s"],"__proto__":{"x":1}}}',
    ) as Record<string, unknown>;
    (input.custom_data as Record<string, unknown>).sparse = sparse;
    const r = validateParameters(open, input);
    assert.ok(r.ok);
    assert.deepEqual(r.resolved, structuredClone(input));
    const data = r.resolved.custom_data as Record<string, unknown>;
    assert.notEqual(data, input.custom_data, 'a new object');
    assert.notEqual(data.list, (input.custom_data as Record<string, unknown>).list, 'a new array');
    assert.ok(Object.hasOwn(data, '__proto__'), '"__proto__" stays an own key');
    assert.equal(Object.getPrototypeOf(data), Object.prototype, 'and does not become the prototype');
    assert.equal(1 in (data.sparse as unknown[]), false, 'the hole is kept');
  });

  it('copies what JSON cannot hold as structuredClone does: a Date stays a Date; a function is refused by a throw', () => {
    const when = new Date('2026-01-02T03:04:05.000Z');
    const r = validateParameters(open, { custom_data: { when, tags: new Set(['a']) } });
    assert.ok(r.ok);
    const data = r.resolved.custom_data as { when: Date; tags: Set<string> };
    assert.ok(data.when instanceof Date && data.when !== when);
    assert.equal(data.when.getTime(), when.getTime());
    assert.deepEqual([...data.tags], ['a']);
    assert.throws(() => validateParameters(open, { custom_data: { f: () => 1 } }), {
      name: 'DataCloneError',
    });
  });

  it('names the path of a problem found deep inside clean values', () => {
    const r = validateParameters(open, {
      content_id: 'c',
      custom_data: { ok: [1, 'two', { three: 3 }], bad: [{ deeper: ['fine', 'x\u0000y'] }] },
    });
    assert.equal(r.ok, false);
    assert.deepEqual(!r.ok && r.problems, [
      'parameters.custom_data.bad[0].deeper[1] contains a NUL character (\\u0000), which is not accepted in parameters',
    ]);
  });
});
