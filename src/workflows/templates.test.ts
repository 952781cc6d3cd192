import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TemplateError, isTruthy, parseTemplate, renderTemplate, type TemplateScope } from './templates.js';

const scope: TemplateScope = {
  parameters: {
    content_id: 'abc',
    seconds: 2.5,
    flag: false,
    none: null,
    list: ['x', { deep: [10, 20] }],
    nested: { a: { b: 'c' } },
    sneaky: '{{ job.id }}',
  },
  job: { id: 42, client: 'acme', workflow: 'demo', priority: 3 },
  tasks: { probe: { output: { streams: [{ codec: 'h264', width: 1920 }], ok: true }, state: 'succeeded' } },
  storage: { root: '/srv/storage/acme' },
};

describe('renderTemplate', () => {
  it('keeps the type of a value when the string is exactly one expression', () => {
    assert.equal(renderTemplate('{{ parameters.seconds }}', scope), 2.5);
    assert.equal(renderTemplate('{{parameters.flag}}', scope), false);
    assert.equal(renderTemplate('{{ parameters.none }}', scope), null);
    assert.deepEqual(renderTemplate('{{ parameters.nested }}', scope), { a: { b: 'c' } });
    assert.deepEqual(renderTemplate('{{ tasks.probe.output.streams }}', scope), [
      { codec: 'h264', width: 1920 },
    ]);
    assert.equal(renderTemplate('{{ job.id }}', scope), 42);
  });

  it('follows dotted paths and [n] indexes', () => {
    assert.equal(renderTemplate('{{ tasks.probe.output.streams[0].width }}', scope), 1920);
    assert.equal(renderTemplate('{{ parameters.list[1].deep[1] }}', scope), 20);
    assert.equal(renderTemplate('{{ tasks.probe.state }}', scope), 'succeeded');
    assert.equal(renderTemplate('{{ storage.root }}/in', scope), '/srv/storage/acme/in');
  });

  it('interpolates mixed strings: objects as JSON, null and missing as empty', () => {
    assert.equal(
      renderTemplate('id={{ job.id }} p={{ job.priority }} f={{ parameters.flag }}', scope),
      'id=42 p=3 f=false',
    );
    assert.equal(renderTemplate('n={{ parameters.nested }}', scope), 'n={"a":{"b":"c"}}');
    assert.equal(renderTemplate('[{{ parameters.none }}][{{ parameters.missing }}]', scope), '[][]');
  });

  it('renders a missing path as undefined: dropped from objects, null in arrays', () => {
    assert.equal(renderTemplate('{{ parameters.missing }}', scope), undefined);
    assert.equal(renderTemplate('{{ tasks.nope.output.x }}', scope), undefined);
    assert.equal(renderTemplate('{{ parameters.content_id[0] }}', scope), undefined);
    assert.deepEqual(renderTemplate({ a: '{{ parameters.missing }}', b: 1 }, scope), { b: 1 });
    assert.deepEqual(renderTemplate(['{{ parameters.missing }}', 'x'], scope), [null, 'x']);
  });

  it('walks arrays and objects and leaves the input untouched', () => {
    const input = {
      command: 'echo',
      args: ['{{ parameters.content_id }}', 3, true],
      env: { N: '{{ job.id }}' },
    };
    const copy = structuredClone(input);
    assert.deepEqual(renderTemplate(input, scope), {
      command: 'echo',
      args: ['abc', 3, true],
      env: { N: 42 },
    });
    assert.deepEqual(input, copy);
  });

  it('never evaluates code and never reads inherited properties', () => {
    assert.throws(
      () => renderTemplate("{{ constructor.constructor('return process')() }}", scope),
      TemplateError,
    );
    assert.throws(
      () => renderTemplate('{{ parameters.content_id.constructor.constructor("x")() }}', scope),
      TemplateError,
    );
    assert.throws(() => renderTemplate('{{ process.exit() }}', scope), TemplateError);
    assert.throws(() => renderTemplate('{{ parameters.a + 1 }}', scope), TemplateError);
    assert.equal(renderTemplate('{{ parameters.constructor }}', scope), undefined);
    assert.equal(renderTemplate('{{ parameters.__proto__ }}', scope), undefined);
    assert.equal(renderTemplate('{{ parameters.content_id.length }}', scope), undefined);
    assert.equal(renderTemplate('{{ tasks.probe.output.streams.length }}', scope), undefined);
    assert.equal(renderTemplate('{{ parameters.toString }}', scope), undefined);
  });

  it('does not render templates found inside values (no second pass)', () => {
    assert.equal(renderTemplate('{{ parameters.sneaky }}', scope), '{{ job.id }}');
    assert.equal(renderTemplate('x {{ parameters.sneaky }}', scope), 'x {{ job.id }}');
  });

  it('negates with a leading !', () => {
    assert.equal(renderTemplate('{{ !parameters.flag }}', scope), true);
    assert.equal(renderTemplate('{{ !parameters.content_id }}', scope), false);
    assert.equal(renderTemplate('{{ !parameters.missing }}', scope), true);
  });
});

describe('parseTemplate', () => {
  it('splits text and expressions and marks whole expressions', () => {
    const p = parseTemplate('a {{ job.id }} b');
    assert.equal(p.whole, false);
    assert.equal(p.parts.length, 3);
    assert.equal(parseTemplate('{{ job.id }}').whole, true);
    assert.equal(parseTemplate(' {{ job.id }}').whole, false);
    assert.equal(parseTemplate('no templates').parts[0], 'no templates');
  });

  it('rejects bad templates with a message saying what is accepted', () => {
    assert.throws(() => parseTemplate('{{ job.id '), /without a closing/);
    assert.throws(() => parseTemplate('{{ env.HOME }}'), /must start with parameters, job, tasks, storage/);
    assert.throws(() => parseTemplate('{{ parameters..x }}'), /bad step/);
    assert.throws(() => parseTemplate('{{ parameters.x[a] }}'), /unexpected text/);
    assert.throws(() => parseTemplate('{{ }}'), /is not a path/);
  });
});

describe('isTruthy', () => {
  it('treats empty, "false", "0", 0, null, undefined, false, NaN and [] as false', () => {
    for (const v of ['', ' ', 'false', 'FALSE', '0', 0, null, undefined, false, Number.NaN, []])
      assert.equal(isTruthy(v), false, JSON.stringify(v));
  });
  it('treats everything else as true', () => {
    for (const v of ['x', 'no', 1, -1, true, [0], {}, 'true'])
      assert.equal(isTruthy(v), true, JSON.stringify(v));
  });
});
