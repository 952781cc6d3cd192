import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { BUNDLED_WORKFLOWS_DIR } from '../../src/config/load-config.js';
import { loadCatalog } from '../../src/workflows/catalog.js';
import { resolveHandler } from '../../src/workflows/handlers/registry.js';
import { validateParameters } from '../../src/workflows/parameters.js';
import { isTruthy, renderTemplate, type TemplateScope } from '../../src/workflows/templates.js';
import { makeHandlerContext, type TestHandlerContext } from './handler-context.js';

const contexts: TestHandlerContext[] = [];
after(() => Promise.all(contexts.map((c) => c.cleanup())));

describe('the bundled demo workflow', () => {
  it('runs offline task by task: hello, wait, then a JSON report, with outputs rendered', async () => {
    const catalog = await loadCatalog(BUNDLED_WORKFLOWS_DIR);
    const { definition } = catalog.resolve('acme', 'demo')!;
    assert.deepEqual(validateParameters(definition, {}), {
      ok: false,
      problems: ['parameters.content_id is required'],
    });
    const v = validateParameters(definition, { content_id: 'clip-1', seconds: 0.05 });
    assert.ok(v.ok);
    assert.equal(v.resolved.greeting, 'hello clip-1');

    const job = { id: 9, client: 'acme', workflow: 'demo', priority: 5 };
    const scope: TemplateScope = { parameters: v.resolved, job, tasks: {}, storage: { root: '/srv/acme' } };
    // Runs in definition order, which here respects every task's needs.
    for (const [i, task] of definition.tasks.entries()) {
      assert.ok(task.needs.every((n) => scope.tasks[n]?.state === 'succeeded'));
      if (task.if !== undefined) assert.ok(isTruthy(renderTemplate(task.if, scope)));
      const inputs = renderTemplate(task.with ?? {}, scope) as Record<string, unknown>;
      const c = await makeHandlerContext(inputs, {
        job,
        parameters: v.resolved,
        task: { id: i + 1, name: task.name, queue: task.queue },
      });
      contexts.push(c);
      const handler = await resolveHandler(task.run, catalog.dir);
      scope.tasks[task.name] = { output: await handler(c.ctx), state: 'succeeded' };
    }
    const report = scope.tasks.report!.output as { exit_code: number; stdout: string; json: unknown };
    assert.equal(report.exit_code, 0);
    assert.deepEqual(report.json, { job, parameters: v.resolved, wait: { slept_seconds: 0.05 } });
    assert.deepEqual(JSON.parse(report.stdout), report.json);
    assert.deepEqual(renderTemplate(definition.outputs, scope), {
      message: 'hello clip-1',
      metadata: { job, parameters: v.resolved, wait: { slept_seconds: 0.05 } },
    });
  });
});
