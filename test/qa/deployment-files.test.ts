/**
 * The deployment files say what the engine understands: compose.yaml parses (with its YAML merge
 * keys), every engine service's environment (the Dockerfile's ENV under compose's) loads with the
 * engine's own `loadConfig`, its database URL points at the compose PostgreSQL with that
 * service's credentials, the shutdown grace fits in the stop grace period, the published port is
 * the one the engine listens on, the worker's command is a real CLI command with real options, and
 * the Dockerfile's health check asks a route the engine answers 200 without credentials.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { buildServer } from '../../src/api/build-server.js';
import { buildProgram } from '../../src/cli/program.js';
import { loadConfig } from '../../src/config/load-config.js';
import { startTestEngine, type TestEngine } from '../helpers/engine.js';
import { createTestStore, type TestStore } from '../helpers/stores.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const read = (f: string): string => readFileSync(path.join(ROOT, f), 'utf8');

interface ComposeService {
  build?: unknown;
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  stop_grace_period?: string;
}
interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

/** `${NAME}`, `${NAME:-default}` and `${NAME:?message}` as compose resolves them, from `vars`. */
function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(
    /\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}/g,
    (_m, name: string, op?: string, rest?: string) => {
      const v = vars[name];
      if (v !== undefined && v !== '') return v;
      if (op === '-') return rest ?? '';
      throw new Error(`compose would refuse to start: ${rest ?? name}`);
    },
  );
}

/** The `ENV` pairs of the Dockerfile's last stage. */
function dockerfileEnv(dockerfile: string): Record<string, string> {
  const stages = dockerfile.split(/^FROM /m);
  const last = stages.at(-1)!.replace(/\\\n\s*/g, ' ');
  const env: Record<string, string> = {};
  for (const line of last.split('\n'))
    if (line.startsWith('ENV '))
      for (const m of line.slice(4).matchAll(/([A-Z0-9_]+)=(\S+)/g)) env[m[1]!] = m[2]!;
  return env;
}

/** Seconds of a compose duration such as `70s`, `1m30s`. */
function durationSeconds(d: string): number {
  let s = 0;
  for (const m of d.matchAll(/(\d+)(h|m|s)/g))
    s += Number(m[1]) * { h: 3600, m: 60, s: 1 }[m[2] as 'h' | 'm' | 's'];
  return s;
}

const compose = parse(read('compose.yaml'), { merge: true }) as ComposeFile;
const dockerfile = read('Dockerfile');
const engineServices = Object.entries(compose.services).filter(([, s]) => s.build !== undefined);

void describe('compose.yaml and the Dockerfile', () => {
  void it('has a PostgreSQL with a health check and engine services built from the Dockerfile', () => {
    const pgService = compose.services.postgres;
    assert.ok(pgService?.image?.startsWith('postgres:'), 'a postgres service from the official image');
    assert.ok(engineServices.length >= 3, 'two engines and a worker');
    for (const [name, s] of engineServices) {
      assert.equal(
        s.depends_on?.postgres?.condition,
        'service_healthy',
        `${name} waits for a healthy PostgreSQL`,
      );
      for (const v of s.volumes ?? []) {
        const named = v.split(':')[0]!;
        if (!named.startsWith('.') && !named.startsWith('/'))
          assert.ok(compose.volumes && named in compose.volumes, `${name}'s volume ${named} is declared`);
      }
    }
  });

  void it("loads every engine service's environment with the engine's own configuration rules", () => {
    const pgEnv = compose.services.postgres!.environment!;
    const baseEnv = dockerfileEnv(dockerfile);
    assert.equal(baseEnv.TASK_ENGINE_PORT, '3000');
    assert.throws(
      () => interpolate(engineServices[0]![1].environment!.TASK_ENGINE_ADMIN_API_KEY!, {}),
      /TASK_ENGINE_ADMIN_API_KEY/,
      'compose refuses to start without an admin key, and says which variable',
    );
    for (const [name, s] of engineServices) {
      const env: Record<string, string> = { ...baseEnv };
      for (const [k, v] of Object.entries(s.environment ?? {}))
        env[k] = interpolate(String(v), { TASK_ENGINE_ADMIN_API_KEY: 'k'.repeat(32) });
      const config = loadConfig(env, ROOT);
      const db = new URL(config.databaseUrl!);
      assert.equal(db.hostname, 'postgres', `${name} reaches the compose PostgreSQL by its service name`);
      assert.equal(db.username, pgEnv.POSTGRES_USER);
      assert.equal(db.password, pgEnv.POSTGRES_PASSWORD);
      assert.equal(db.pathname.slice(1), pgEnv.POSTGRES_DB);
      assert.equal(config.host, '0.0.0.0', `${name} listens beyond the container's loopback`);
      assert.ok(
        config.shutdownGraceSeconds < durationSeconds(s.stop_grace_period ?? '10s'),
        `${name}: the engine's shutdown grace (${config.shutdownGraceSeconds} s) ends before compose kills it (${s.stop_grace_period})`,
      );
      for (const p of s.ports ?? [])
        assert.equal(
          Number(p.split(':').at(-1)),
          config.port,
          `${name} publishes the port the engine listens on`,
        );
      if (s.command) {
        const program = buildProgram(
          { env: {}, out: () => undefined, err: () => undefined, onSignal: () => () => undefined } as never,
          'test',
        );
        const [cmdName, ...args] = s.command;
        const cmd = program.commands.find((c) => c.name() === cmdName);
        assert.ok(cmd, `${name}'s command "${cmdName}" is a task-engine command`);
        for (const a of args.filter((x) => x.startsWith('--')))
          assert.ok(
            cmd.options.some((o) => o.long === a),
            `${name}: ${cmdName} has the option ${a}`,
          );
      }
    }
  });

  void it('runs as a non-root user, with FFmpeg, the built CLI as entry point', () => {
    const user = /^USER (\S+)/m.exec(dockerfile)?.[1];
    assert.ok(user && user !== 'root' && user !== '0', 'a non-root USER');
    assert.match(dockerfile, /apt-get install[^\n]*\bffmpeg\b/);
    const pkg = JSON.parse(read('package.json')) as { bin: Record<string, string> };
    const entry = /^ENTRYPOINT (\[.*\])/m.exec(dockerfile)?.[1];
    assert.ok(entry, 'an ENTRYPOINT');
    assert.ok(
      (JSON.parse(entry) as string[]).includes(pkg.bin['task-engine']!),
      'the entry point is the package bin',
    );
  });

  void describe('the health check', () => {
    let store: TestStore;
    let te: TestEngine;
    before(async () => {
      store = await createTestStore('pglite');
      te = await startTestEngine(store, { roles: ['api'], start: false });
    });
    after(async () => {
      await te?.stop();
      await store?.dispose();
    });
    void it('asks a route the engine answers 200 without credentials', async () => {
      const check = /^HEALTHCHECK[\s\S]*?CMD ([^\n]+)/m.exec(dockerfile)?.[1] ?? '';
      const route = /'(\/[a-z]*)'\)/.exec(check)?.[1];
      assert.ok(route, `a route in the health check command: ${check}`);
      const app = buildServer(te.engine.ctx);
      try {
        const res = await app.inject({ method: 'GET', url: route });
        assert.equal(res.statusCode, 200, `${route} answers ${res.statusCode}: ${res.body.slice(0, 200)}`);
      } finally {
        await app.close();
      }
    });
  });
});
