/**
 * Authentication and authorisation (SPEC section 4). Every route declares its access in
 * `config.auth`: `public` (no credentials; `GET /` and the API description), `client` (any active
 * client; the default), or `admin` (an active admin client). Credentials are the `client` header
 * and the `api-key` header (`x-api-key` is accepted too), or `Authorization: Bearer <client>:<api-key>`
 * for browsers and tools. The caller becomes `request.viewer`.
 * Verified keys are remembered for a few seconds and forgotten at once when any client changes
 * (see `authenticateClientCached`).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { EngineError } from '../../errors/catalogue.js';
import { authenticateClientCached, rememberedViewer, type Viewer } from '../../engine/clients/clients.js';
import type { Clock } from '../../engine/clock.js';
import type { Executor } from '../../store/executor.js';

/** Who may call a route. */
export type RouteAccess = 'public' | 'client' | 'admin';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated caller; null only on public routes. */
    viewer: Viewer | null;
  }
  interface FastifyContextConfig {
    /** Who may call the route; default `client`. */
    auth?: RouteAccess;
    /**
     * The body's `client` names the client the request is about, not the caller, so it need not
     * match the `client` header: only `POST /settings` (admin), where it names the client a
     * setting is for.
     */
    bodyClientIsTarget?: boolean;
  }
}

const CREDENTIALS_HINT =
  'send the headers "client: <client name>" and "api-key: <key>" (or "x-api-key"), or "Authorization: Bearer <client name>:<key>"';

/**
 * The credentials of a request: the `client` and `api-key` headers, or else
 * `Authorization: Bearer <client>:<api-key>` (the client name cannot hold `:`, the key may).
 * @returns what was found; either part undefined when missing.
 * @throws {EngineError} `UNAUTHORIZED` for an `Authorization` header that is not that form.
 */
function credentialsOf(request: FastifyRequest): { client?: string; apiKey?: string } {
  const client = singleHeader(request, 'client');
  const apiKey = singleHeader(request, 'api-key') ?? singleHeader(request, 'x-api-key');
  const authorization = singleHeader(request, 'authorization');
  if (client || apiKey || authorization === undefined) return { client, apiKey };
  const match = /^Bearer\s+([^:\s]+):(\S+)$/i.exec(authorization);
  if (!match)
    throw new EngineError(
      'UNAUTHORIZED',
      `the Authorization header must be "Bearer <client name>:<api-key>"; ${CREDENTIALS_HINT}`,
    );
  return { client: match[1], apiKey: match[2] };
}

function singleHeader(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  return typeof v === 'string' ? v.trim() : undefined;
}

/**
 * The authenticated viewer of a request on a non-public route.
 * @throws {EngineError} `UNAUTHORIZED` when called on a request that was not authenticated.
 */
export function viewerOf(request: FastifyRequest): Viewer {
  if (!request.viewer) throw new EngineError('UNAUTHORIZED', `credentials are required; ${CREDENTIALS_HINT}`);
  return request.viewer;
}

/**
 * Installs the authentication hooks on `app` (root level, so they run for every route):
 * - `onRequest`: 401 for missing or wrong credentials, 403 for non-admins on admin routes;
 *   before the body is read, so an unauthenticated caller cannot make the server parse anything.
 * - `preHandler`: a body field `client`, where present, must equal the `client` header (400),
 *   except on a route that declares `config.bodyClientIsTarget` (`POST /settings`).
 */
export function registerAuth(app: FastifyInstance, db: Executor, clock: Clock): void {
  app.decorateRequest('viewer', null);

  // Callback hooks, not async ones: a request whose key is remembered (the usual case) is
  // authenticated without a promise or a turn of the event loop. A throw is answered as a
  // rejection would be (Fastify's hook runner catches it).
  app.addHook('onRequest', (request, _reply, done) => {
    if (request.is404) return done();
    const access: RouteAccess = request.routeOptions.config.auth ?? 'client';
    if (access === 'public') return done();
    const { client, apiKey } = credentialsOf(request);
    if (!client || !apiKey) {
      const missing = [!client && '"client"', !apiKey && '"api-key"'].filter(Boolean).join(' and ');
      throw new EngineError(
        'UNAUTHORIZED',
        `missing credentials: the ${missing} header is required; ${CREDENTIALS_HINT}`,
      );
    }
    const known = rememberedViewer(db, client, apiKey, clock);
    if (known !== undefined) return done(admit(request, access, client, known));
    authenticateClientCached(db, client, apiKey, clock).then(
      (viewer) => done(admit(request, access, client, viewer)),
      done,
    );
  });

  app.addHook('preHandler', (request, _reply, done) => {
    const viewer = request.viewer;
    const body = request.body;
    if (!viewer || body === null || typeof body !== 'object' || Array.isArray(body)) return done();
    if (!Object.hasOwn(body, 'client') || request.routeOptions.config.bodyClientIsTarget === true)
      return done();
    done(bodyClientError(body, viewer) ?? undefined);
  });
}

/**
 * Makes `viewer` the caller of `request` when it may call the route.
 * @returns undefined when admitted; else the error to answer: `UNAUTHORIZED` (no such active
 * client with that key), `FORBIDDEN` (a non-admin on an admin route).
 */
function admit(
  request: FastifyRequest,
  access: RouteAccess,
  client: string,
  viewer: Viewer | null,
): EngineError | undefined {
  if (!viewer)
    return new EngineError(
      'UNAUTHORIZED',
      `wrong credentials: no active client "${client.slice(0, 64)}" with that api-key; ${CREDENTIALS_HINT}`,
    );
  if (access === 'admin' && !viewer.admin)
    return new EngineError(
      'FORBIDDEN',
      `client "${viewer.client}" is not an admin client; ${request.method} ${request.routeOptions.url} needs an admin client`,
    );
  request.viewer = viewer;
  return undefined;
}

/**
 * The refusal of a body whose `client` field is not the caller (the `preHandler` above; `POST
 * /jobs/batch` applies it to each item).
 * @returns the 400 `VALIDATION_FAILED` error, or null when the body has no `client` field or the
 * caller's name.
 */
export function bodyClientError(body: unknown, viewer: Viewer): EngineError | null {
  if (body === null || typeof body !== 'object' || Array.isArray(body) || !Object.hasOwn(body, 'client'))
    return null;
  const bodyClient = (body as Record<string, unknown>).client;
  if (bodyClient === viewer.client) return null;
  return new EngineError(
    'VALIDATION_FAILED',
    `body field "client" (${JSON.stringify(bodyClient)}) does not match the client header ("${viewer.client}"); send the same client name or leave the field out`,
  );
}
