/**
 * The console's shell: the sign-in page when nobody is signed in, else the header (pages, engine
 * version, live status, who is signed in, sign out) and the page the URL names.
 */
import type { JSX } from 'preact';
import { useEffect } from 'preact/hooks';
import { get } from './lib/api';
import { useLiveStatus } from './lib/live';
import { Link, match, useLocation } from './lib/router';
import { type Session, setSession, useSession } from './lib/session';
import type { Health } from './lib/types';
import { noteVersion, useVersion } from './lib/version';
import { SignIn } from './pages/sign-in';
import { Overview } from './pages/overview';
import { Jobs } from './pages/jobs';
import { QueuePage } from './pages/queue';
import { Workflows, WorkflowPage } from './pages/workflows';
import { Schedules } from './pages/schedules';
import { Settings } from './pages/settings';
import { Clients } from './pages/clients';
import { lazyPage } from './lib/lazy';

/** The job page carries the graph, timeline and log view: loaded when first opened. */
const JobPage = lazyPage(() => import('./pages/job').then((m) => m.JobPage));

/** The pages in the header, in order; `admin` pages are shown to admin clients only. */
const NAV: { to: string; label: string; admin?: boolean }[] = [
  { to: '/', label: 'Overview' },
  { to: '/jobs', label: 'Jobs' },
  { to: '/queue', label: 'Queue' },
  { to: '/workflows', label: 'Workflows' },
  { to: '/schedules', label: 'Schedules' },
  { to: '/settings', label: 'Settings' },
  { to: '/clients', label: 'Clients', admin: true },
];

function route(path: string, session: Session): JSX.Element {
  let m: Record<string, string> | null;
  if (path === '/') return <Overview />;
  if (path === '/jobs') return <Jobs session={session} />;
  if ((m = match('/jobs/:id', path))) return <JobPage id={m.id!} />;
  if (path === '/queue') return <QueuePage />;
  if (path === '/workflows') return <Workflows />;
  if ((m = match('/workflows/:name', path))) return <WorkflowPage name={m.name!} />;
  if (path === '/schedules') return <Schedules session={session} />;
  if (path === '/settings') return <Settings session={session} />;
  if (path === '/clients')
    return session.admin ? <Clients session={session} /> : <NotAllowed what="The clients page" />;
  return (
    <main class="page">
      <h1>Not found</h1>
      <p>
        No console page at <code>{path}</code>. <Link to="/">Go to the overview</Link>.
      </p>
    </main>
  );
}

function NotAllowed({ what }: { what: string }): JSX.Element {
  return (
    <main class="page">
      <h1>Admins only</h1>
      <p>{what} is for admin clients.</p>
    </main>
  );
}

const LIVE_TEXT = {
  connecting: ['connecting', 'Opening the live event stream'],
  live: ['live', 'Changes arrive as they happen (GET /events)'],
  reconnecting: ['reconnecting', 'The event stream dropped; reconnecting with Last-Event-ID'],
  polling: ['polling', 'This engine has no event stream: the page is read again every 2 s'],
} as const;

function Header({ session }: { session: Session }): JSX.Element {
  const loc = useLocation();
  const live = useLiveStatus();
  const version = useVersion();
  useEffect(() => {
    if (version) return;
    get<Health>('/health')
      .then((h) => noteVersion(h.version))
      .catch(() => undefined);
  }, []);
  const active = (to: string): boolean =>
    to === '/' ? loc.path === '/' : loc.path === to || loc.path.startsWith(`${to}/`);
  return (
    <header class="top">
      <Link to="/" class="brand">
        Task Engine
      </Link>
      <nav>
        {NAV.filter((n) => !n.admin || session.admin).map((n) => (
          <Link
            key={n.to}
            to={n.to}
            class={active(n.to) ? 'active' : ''}
            aria-current={active(n.to) ? 'page' : undefined}
          >
            {n.label}
          </Link>
        ))}
      </nav>
      <div class="top-right">
        {live ? (
          <span class={`live live-${live}`} title={LIVE_TEXT[live][1]} data-live={live}>
            {LIVE_TEXT[live][0]}
          </span>
        ) : null}
        {version ? (
          <span class="version" title="engine version" data-testid="version">
            v{version}
          </span>
        ) : null}
        <span class="who" data-testid="who">
          {session.client}
          {session.admin ? <span class="badge">admin</span> : null}
        </span>
        <button type="button" class="link" onClick={() => setSession(null)}>
          Sign out
        </button>
      </div>
    </header>
  );
}

/** The whole console. */
export function App(): JSX.Element {
  const session = useSession();
  const loc = useLocation();
  if (!session) return <SignIn />;
  return (
    <>
      <Header session={session} />
      {route(loc.path, session)}
    </>
  );
}
