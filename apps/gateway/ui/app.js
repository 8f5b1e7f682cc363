// @ts-check
// Gantry's dashboard: preact + htm, loaded as plain ES modules (no build step), talking to the /v1 API through
// @gantry/client with the key the user typed (kept in sessionStorage: gone when the browser session ends).
// Typechecked (no build step all the same): `// @ts-check` with JSDoc types from @gantry/client, by
// apps/gateway/ui/tsconfig.json under `node tools/gantry.mjs lint`.
// Live data: the queue page follows the queue's SSE stream (polling GET /v1/queue only while that stream is down),
// polls O(1) routes (workers, tenants) and bounded pages of the listing; a job page follows the job's own SSE stream.
// Nothing scans, whatever the queue's size (docs/dashboard.md).
import { h, render } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import { GantryClient, isTerminalStatus } from '@gantry/client';

/**
 * @typedef {import('@gantry/client').JobView} JobView
 * @typedef {import('@gantry/client').JobEventMessage} JobEventMessage
 * @typedef {import('@gantry/client').QueueState} QueueState
 * @typedef {import('@gantry/client').WorkerView} WorkerView
 * @typedef {import('@gantry/client').TenantView} TenantView
 * @typedef {import('@gantry/client').Whoami} Whoami
 * @typedef {import('@gantry/client').Priority} Priority
 * @typedef {{ client: GantryClient, who: Whoami }} Session
 * @typedef {{ traceUrlTemplate: string | null }} UiConfig
 * @typedef {import('preact').ComponentChildren} Children
 */

const html = htm.bind(h);
const KEY = 'gantry.apiKey';
const POLL_MS = 1000;
/** The queue page's stream reopens after this long, doubled at each failure up to the max (then jittered). */
const STREAM_RETRY_MS = 1000;
const STREAM_RETRY_MAX_MS = 15_000;
/** @type {Priority[]} */
const PRIORITIES = ['urgent', 'high', 'normal', 'low'];
/** At most this many running jobs are read one by one for an admin's "Running jobs" (one GET each per poll). */
const RUNNING_VIEWS_MAX = 50;

// ---- routing ---------------------------------------------------------------------------------------------------
function usePath() {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const on = () => setPath(location.pathname);
    addEventListener('popstate', on);
    return () => removeEventListener('popstate', on);
  }, []);
  return path;
}
/** @param {string} path */
function go(path) {
  history.pushState(null, '', path);
  dispatchEvent(new PopStateEvent('popstate'));
}
/** @param {{ href: string, children?: Children, [attr: string]: unknown }} props */
function Link({ href, children, ...rest }) {
  /** @param {MouseEvent} e */
  const onClick = (e) => {
    if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    go(href);
  };
  return html`<a href=${href} onClick=${onClick} ...${rest}>${children}</a>`;
}

// ---- data helpers ----------------------------------------------------------------------------------------------
/**
 * Calls `load` now and every `ms`; returns { data, error } (the last data stays while an error is shown).
 * @template T
 * @param {() => Promise<T>} load
 * @param {number} ms
 * @param {unknown[]} deps
 * @returns {{ data: T | undefined, error: unknown }}
 */
function usePoll(load, ms, deps) {
  const [state, setState] = useState(
    /** @type {{ data: T | undefined, error: unknown }} */ ({ data: undefined, error: undefined }),
  );
  useEffect(() => {
    let alive = true;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let timer;
    const tick = async () => {
      try {
        const data = await load();
        if (alive) setState({ data, error: undefined });
      } catch (error) {
        if (alive) setState((s) => ({ data: s.data, error }));
      }
      if (alive) timer = setTimeout(tick, ms);
    };
    void tick();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, deps);
  return state;
}
/**
 * The queue's state, live: `GET /v1/queue/events` through the client (fetch, not EventSource: the key is a header).
 * While the stream is down (it ended, broke or was refused) the page says "reconnecting", polls `GET /v1/queue`
 * every `ms` so the numbers stay current, and reopens the stream after a backoff (doubling from STREAM_RETRY_MS up to
 * STREAM_RETRY_MAX_MS, jittered, reset by an event); the poll stops at the stream's first event.
 * @param {GantryClient} client
 * @param {number} ms
 * @returns {{ data: QueueState | undefined, error: unknown, link: 'connecting' | 'live' | 'reconnecting' }}
 */
function useQueueStream(client, ms) {
  const [state, setState] = useState(
    /** @type {{ data: QueueState | undefined, error: unknown, link: 'connecting' | 'live' | 'reconnecting' }} */ ({
      data: undefined,
      error: undefined,
      link: 'connecting',
    }),
  );
  useEffect(() => {
    const stop = new AbortController();
    const { signal } = stop;
    /** True while the stream is down: the poll runs only then, and only then are its answers shown. */
    let down = false;
    /** A poll is in flight (one at a time, whatever the stream does meanwhile). */
    let polling = false;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let pollTimer;
    const poll = async () => {
      polling = true;
      try {
        const data = await client.queue.get({ signal });
        if (down) setState((s) => ({ ...s, data, error: undefined }));
      } catch (error) {
        if (down && !signal.aborted) setState((s) => ({ ...s, error }));
      }
      polling = false;
      if (down && !signal.aborted) pollTimer = setTimeout(poll, ms);
    };
    (async () => {
      let failures = 0;
      while (!signal.aborted) {
        try {
          for await (const data of client.queue.events({ signal, reconnect: false })) {
            failures = 0;
            down = false;
            clearTimeout(pollTimer);
            setState({ data, error: undefined, link: 'live' });
          }
        } catch {
          // Refused (503 without a leader, 429) or broken: the poll below shows the data, or the error.
        }
        if (signal.aborted) return;
        setState((s) => ({ ...s, link: 'reconnecting' }));
        if (!down) {
          down = true;
          if (!polling) void poll();
        }
        const wait = Math.min(STREAM_RETRY_MAX_MS, STREAM_RETRY_MS * 2 ** failures++);
        await new Promise((r) => setTimeout(r, wait / 2 + (Math.random() * wait) / 2));
      }
    })();
    return () => {
      stop.abort();
      clearTimeout(pollTimer);
    };
  }, [client]);
  return state;
}
/** @param {unknown} e */
const msg = (e) => (e instanceof Error && e.message) || String(e);
/** The HTTP status of an API error (GantryApiError), if it is one. */
const statusOf = (/** @type {unknown} */ e) =>
  typeof e === 'object' && e !== null && 'status' in e && typeof e.status === 'number' ? e.status : undefined;
/** @param {JobView} j */
const pct = (j) => Math.round(j.progress?.percent ?? (j.status === 'completed' ? 100 : 0));
/** @param {JobView} j */
function eta(j) {
  const p = pct(j);
  if (j.status !== 'running' || !j.startedAt || p <= 0) return '–';
  const left = Math.round((((Date.now() - Date.parse(j.startedAt)) / 1000) * (100 - p)) / p);
  return left >= 60 ? `${Math.floor(left / 60)}m ${left % 60}s` : `${left}s`;
}
/** @param {{ s: string }} props */
const Status = ({ s }) => html`<span class=${`badge s-${s}`}>${s}</span>`;
/** @param {string | undefined | null} t */
const when = (t) => (t ? new Date(t).toLocaleTimeString() : '');

// ---- shell -----------------------------------------------------------------------------------------------------
/** @param {{ onLogin: (s: Session) => void }} props */
function Login({ onLogin }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState('');
  /** @param {SubmitEvent} e */
  const submit = async (e) => {
    e.preventDefault();
    setError('');
    const client = new GantryClient({ url: location.origin, apiKey: key.trim() });
    try {
      const who = await client.whoami();
      sessionStorage.setItem(KEY, key.trim());
      onLogin({ client, who });
    } catch (err) {
      setError(statusOf(err) === 401 ? 'This API key is not valid.' : msg(err));
    }
  };
  return html`<main class="login">
    <h1>Gantry</h1>
    <form onSubmit=${submit} aria-describedby="key-help">
      <label for="api-key">API key</label>
      <input
        id="api-key"
        name="apiKey"
        type="password"
        autocomplete="off"
        required
        value=${key}
        onInput=${(/** @type {InputEvent & { currentTarget: HTMLInputElement }} */ e) => setKey(e.currentTarget.value)}
      />
      <p id="key-help" class="muted">
        Kept in this browser tab's session storage only; it is sent to this gateway and nowhere else.
      </p>
      <button type="submit">Sign in</button>
      ${error && html`<p class="error" role="alert">${error}</p>`}
    </form>
  </main>`;
}

function App() {
  const [session, setSession] = useState(/** @type {Session | undefined} */ (undefined));
  const [checked, setChecked] = useState(false);
  const [config, setConfig] = useState(/** @type {UiConfig} */ ({ traceUrlTemplate: null }));
  const path = usePath();
  useEffect(() => {
    fetch('/ui/config.json')
      .then((r) => r.json())
      .then(setConfig, () => undefined);
    const key = sessionStorage.getItem(KEY);
    if (!key) return setChecked(true);
    const client = new GantryClient({ url: location.origin, apiKey: key });
    client.whoami().then(
      (who) => {
        setSession({ client, who });
        setChecked(true);
      },
      () => {
        sessionStorage.removeItem(KEY);
        setChecked(true);
      },
    );
  }, []);
  if (!checked) return html`<p class="loading">Loading…</p>`;
  if (!session) return html`<${Login} onLogin=${setSession} />`;
  const logout = () => {
    sessionStorage.removeItem(KEY);
    setSession(undefined);
  };
  const admin = session.who.role === 'admin';
  /** @type {[string, string][]} */
  const nav = [
    ['/ui', 'Queue'],
    ['/ui/workers', 'Workers'],
    ['/ui/schedules', 'Schedules'],
    ...(admin ? /** @type {[string, string][]} */ ([['/ui/webhooks', 'Failed webhooks']]) : []),
  ];
  const current = path.replace(/\/$/, '') || '/ui';
  let page;
  const job = /^\/ui\/jobs\/([^/]+)$/.exec(current);
  if (job) page = html`<${JobPage} id=${decodeURIComponent(job[1])} session=${session} config=${config} />`;
  else if (current === '/ui/workers') page = html`<${WorkersPage} session=${session} />`;
  else if (current === '/ui/webhooks') page = html`<${WebhooksPage} session=${session} />`;
  else if (current === '/ui/schedules') page = html`<${SchedulesPage} session=${session} />`;
  else page = html`<${QueuePage} session=${session} />`;
  return html` <header class="top">
      <h1>Gantry</h1>
      <nav aria-label="Dashboard">
        ${nav.map(([href, label]) => html`<${Link} href=${href} aria-current=${current === href ? 'page' : undefined}>${label}<//>`)}
      </nav>
      <span class="who" data-testid="who">${session.who.role} · tenant ${session.who.tenant}</span>
      <button type="button" onClick=${logout}>Sign out</button>
    </header>
    <main>${page}</main>`;
}

// ---- queue page ------------------------------------------------------------------------------------------------
/** @returns {[string, (label: string, fn: () => Promise<unknown>) => Promise<void>]} */
function useNotice() {
  const [notice, setNotice] = useState('');
  const run = useCallback(async (/** @type {string} */ label, /** @type {() => Promise<unknown>} */ fn) => {
    try {
      await fn();
      setNotice(`${label}: done`);
    } catch (e) {
      setNotice(`${label}: ${msg(e)}`);
    }
  }, []);
  return [notice, run];
}
/** @param {{ text: string }} props */
const Notice = ({ text }) => html`<p class="muted" role="status" aria-live="polite" data-testid="notice">${text}</p>`;

/** @param {{ q: QueueState, link: 'connecting' | 'live' | 'reconnecting', admin: boolean, client: GantryClient }} props */
function QueuePanel({ q, link, admin, client }) {
  const [notice, act] = useNotice();
  const state = q.draining ? 'draining' : q.paused ? 'paused' : 'running';
  const used = q.maxConcurrentJobs - q.availableTokens;
  const [cfg, setCfg] = useState({ maxConcurrentJobs: '', maxQueueSize: '' });
  /** @param {SubmitEvent} e */
  const saveConfig = (e) => {
    e.preventDefault();
    /** @type {import('@gantry/client').QueueConfigRequest} */
    const body = {};
    if (cfg.maxConcurrentJobs !== '') body.maxConcurrentJobs = Number(cfg.maxConcurrentJobs);
    if (cfg.maxQueueSize !== '') body.maxQueueSize = Number(cfg.maxQueueSize);
    void act('Queue config', () => client.queue.setConfig(body));
  };
  return html`<section class="panel" aria-labelledby="queue-h">
    <h2 id="queue-h">
      Queue <span class=${`badge state-${state}`} data-testid="queue-state">${state}</span>
      <span
        class=${`link link-${link}`}
        role="status"
        data-testid="queue-link"
        title=${link === 'live' ? 'updated live over the event stream' : 'the event stream is down: polling once a second while it reconnects'}
        >${link}</span
      >
    </h2>
    <div class="cards">
      ${PRIORITIES.map(
        (p) =>
          html`<div class="card">
            <span class="label">queued · ${p}</span><span class="value" data-testid=${`depth-${p}`}>${q.depth[p]}</span>
          </div>`,
      )}
      <div class="card">
        <span class="label">queued · total</span><span class="value" data-testid="depth-total">${q.depth.total}</span>
      </div>
      <div class="card">
        <span class="label">running</span><span class="value" data-testid="running">${q.running}</span>
      </div>
      <div class="card">
        <span class="label">retrying</span><span class="value" data-testid="retrying">${q.retrying}</span>
      </div>
      ${
        typeof q.scheduled === 'number' &&
        html`<div class="card">
          <span class="label">scheduled</span><span class="value" data-testid="scheduled">${q.scheduled}</span>
        </div>`
      }
      ${
        typeof q.waiting === 'number' &&
        html`<div class="card">
          <span class="label">waiting</span><span class="value" data-testid="waiting">${q.waiting}</span>
        </div>`
      }
      <div class="card">
        <span class="label" id="tokens-l">tokens in use</span>
        <span class="value" data-testid="tokens">${used} / ${q.maxConcurrentJobs}</span>
        <meter aria-labelledby="tokens-l" min="0" max=${Math.max(1, q.maxConcurrentJobs)} value=${used}></meter>
      </div>
      <div class="card">
        <span class="label">max queue size</span><span class="value" data-testid="max-queue">${q.maxQueueSize}</span>
      </div>
      <div class="card">
        <span class="label">workers</span><span class="value" data-testid="workers">${q.workers}</span>
      </div>
    </div>
    ${
      admin &&
      html`<div class="actions" data-testid="admin-controls">
        <button type="button" onClick=${() => act('Pause', () => client.queue.pause())}>Pause</button>
        <button type="button" onClick=${() => act('Resume', () => client.queue.resume())}>Resume</button>
        <button type="button" onClick=${() => act('Drain', () => client.queue.drain())}>Drain</button>
        <button
          type="button"
          class="danger"
          onClick=${() => confirm('Cancel every queued job?') && act('Clear', () => client.queue.clear())}
        >
          Clear queue
        </button>
        <form class="inline" onSubmit=${saveConfig} aria-label="Queue configuration">
          <label
            >Max concurrent jobs
            <input
              type="number"
              min="0"
              placeholder=${q.maxConcurrentJobs}
              value=${cfg.maxConcurrentJobs}
              onInput=${(/** @type {InputEvent & { currentTarget: HTMLInputElement }} */ e) =>
                setCfg({ ...cfg, maxConcurrentJobs: e.currentTarget.value })}
          /></label>
          <label
            >Max queue size
            <input
              type="number"
              min="1"
              placeholder=${q.maxQueueSize}
              value=${cfg.maxQueueSize}
              onInput=${(/** @type {InputEvent & { currentTarget: HTMLInputElement }} */ e) =>
                setCfg({ ...cfg, maxQueueSize: e.currentTarget.value })}
          /></label>
          <button type="submit">Apply</button>
        </form>
      </div>`
    }
    <${Notice} text=${notice} />
  </section>`;
}

/**
 * @param {{ jobs: JobView[] | undefined, label: string, admin: boolean, client: GantryClient, kind?: 'failed',
 *   showTenant?: boolean }} props
 */
function JobsTable({ jobs, label, admin, client, kind, showTenant }) {
  const [notice, act] = useNotice();
  if (!jobs) return html`<p class="muted">Loading…</p>`;
  if (jobs.length === 0) return html`<p class="muted">None.</p>`;
  return html`<table aria-label=${label}>
      <thead>
        <tr>
          <th>Job</th>
          ${showTenant && html`<th>Tenant</th>`}
          <th>Type</th>
          <th>Status</th>
          <th>Priority</th>
          <th>Progress</th>
          <th>ETA</th>
          ${kind === 'failed' && html`<th>Error</th>`}
          <th>Created</th>
          ${admin && html`<th>Actions</th>`}
        </tr>
      </thead>
      <tbody>
        ${jobs.map(
          (j) =>
            html`<tr data-job=${j.id}>
              <td><${Link} href=${`/ui/jobs/${j.id}`} class="mono">${j.id}<//></td>
              ${showTenant && html`<td>${j.tenant}</td>`}
              <td>${j.type}</td>
              <td><${Status} s=${j.status} /></td>
              <td>${j.priority}</td>
              <td>
                <progress max="100" value=${pct(j)} aria-label=${`progress of job ${j.id}`}></progress> ${pct(j)}%
                ${j.progress?.stage ? html` <span class="muted">${j.progress.stage}</span>` : ''}
              </td>
              <td>${eta(j)}</td>
              ${kind === 'failed' && html`<td>${j.error ? `${j.error.code}: ${j.error.message}` : ''}</td>`}
              <td>${when(j.createdAt)}</td>
              ${
                admin &&
                html`<td>
                  ${!isTerminalStatus(j.status) && html`<button type="button" onClick=${() => act(`Cancel ${j.id}`, () => client.jobs.cancel(j.id))}>Cancel</button>`}
                  ${(j.status === 'failed' || j.status === 'cancelled') && html`<button type="button" onClick=${() => act(`Retry ${j.id}`, () => client.jobs.retry(j.id))}>Retry</button>`}
                </td>`
              }
            </tr>`,
        )}
      </tbody>
    </table>
    <${Notice} text=${notice} />`;
}

/**
 * An admin's running jobs of every tenant, without a scan: GET /v1/workers names every running job id (all tenants
 * for an admin key), and at most RUNNING_VIEWS_MAX of them are read one by one (GET /v1/jobs/{id}, O(1) each).
 * A job that ended between the two reads is left out. Resolves with { items, total }.
 */
/**
 * @param {GantryClient} client
 * @returns {Promise<{ items: JobView[], total: number }>}
 */
async function runningEverywhere(client) {
  const ids = [...new Set((await client.workers.list()).flatMap((w) => w.runningJobs))];
  const views = await Promise.all(
    ids.slice(0, RUNNING_VIEWS_MAX).map((id) => client.jobs.get(id).catch(() => undefined)),
  );
  const items = views
    .filter(/** @returns {v is JobView} */ (v) => v !== undefined && v.status === 'running')
    .sort((a, b) => Date.parse(a.startedAt ?? a.createdAt) - Date.parse(b.startedAt ?? b.createdAt));
  return { items, total: ids.length };
}

/** The tenants an admin can scope the listings to: those GET /v1/tenants knows, the key's own and the chosen one. */
/** @param {{ client: GantryClient, own: string, value: string, onChange: (tenant: string) => void }} props */
function TenantSelect({ client, own, value, onChange }) {
  const { data } = usePoll(() => client.tenants.list(), 5 * POLL_MS, [client]);
  const names = [...new Set([own, value, ...(data ?? []).map((t) => t.tenant)])].sort();
  return html`<form
    class="inline scope"
    aria-label="Listing scope"
    onSubmit=${(/** @type {Event} */ e) => e.preventDefault()}
  >
    <label for="tenant-scope">Tenant</label>
    <select
      id="tenant-scope"
      value=${value}
      onChange=${(/** @type {Event & { currentTarget: HTMLSelectElement }} */ e) => onChange(e.currentTarget.value)}
    >
      ${names.map((t) => html`<option value=${t}>${t === own ? `${t} (this key)` : t}</option>`)}
    </select>
    <span class="muted">scopes recent jobs and recent failures</span>
  </form>`;
}

/** @param {{ session: Session }} props */
function QueuePage({ session }) {
  const { client, who } = session;
  const admin = who.role === 'admin';
  // An admin key may list any tenant (GET /v1/jobs?tenant=); a client key lists its own, and the gateway enforces it.
  const [scope, setScope] = useState(who.tenant);
  const scoped = admin && scope !== who.tenant ? { tenant: scope } : {};
  const queue = useQueueStream(client, POLL_MS);
  const jobs = usePoll(
    async () => {
      const [running, recent, failed] = await Promise.all([
        admin ? runningEverywhere(client) : client.jobs.list({ status: 'running', limit: 50 }),
        client.jobs.list({ limit: 20, ...scoped }),
        client.jobs.list({ status: 'failed', limit: 10, ...scoped }),
      ]);
      const runningTotal = 'total' in running ? running.total : running.items.length;
      return { running: running.items, runningTotal, recent: recent.items, failed: failed.items };
    },
    POLL_MS,
    [client, scope],
  );
  // Rows of the previous scope stay out while the first page of the new one loads.
  const listed = jobs.data && (!admin || jobs.data.recent.every((j) => j.tenant === scope)) ? jobs.data : undefined;
  const workers = usePoll(() => client.workers.list(), 2 * POLL_MS, [client]);
  const more = admin && jobs.data && jobs.data.runningTotal > RUNNING_VIEWS_MAX;
  return html` ${queue.error && html`<p class="error" role="alert">Queue: ${msg(queue.error)}</p>`}
    ${queue.data ? html`<${QueuePanel} q=${queue.data} link=${queue.link} admin=${admin} client=${client} />` : html`<p class="muted">Loading the queue…</p>`}
    <${PoolsPanel} q=${queue.data} workers=${workers.data} />
    <${TenantsPanel} session=${session} />
    ${jobs.error && html`<p class="error" role="alert">Jobs: ${msg(jobs.error)}</p>`}
    <section class="panel" aria-labelledby="running-h">
      <h2 id="running-h">
        Running jobs <span class="muted">(${admin ? 'every tenant' : `tenant ${who.tenant}`})</span>
      </h2>
      ${
        more &&
        html`<p class="muted" data-testid="running-more">
          Showing the first ${RUNNING_VIEWS_MAX} of ${jobs.data?.runningTotal} running jobs (the Workers page lists
          every id).
        </p>`
      }
      <${JobsTable}
        jobs=${jobs.data?.running}
        label="Running jobs"
        admin=${admin}
        client=${client}
        showTenant=${admin}
      />
    </section>
    ${admin && html`<${TenantSelect} client=${client} own=${who.tenant} value=${scope} onChange=${setScope} />`}
    <section class="panel" aria-labelledby="recent-h">
      <h2 id="recent-h">Recent jobs <span class="muted">(tenant ${admin ? scope : who.tenant})</span></h2>
      <${JobsTable} jobs=${listed?.recent} label="Recent jobs" admin=${admin} client=${client} />
    </section>
    <section class="panel" aria-labelledby="failed-h">
      <h2 id="failed-h">Recent failures <span class="muted">(tenant ${admin ? scope : who.tenant})</span></h2>
      <${JobsTable} jobs=${listed?.failed} label="Recent failures" admin=${admin} client=${client} kind="failed" />
    </section>`;
}

/**
 * Pools: queued jobs per priority and scheduled jobs (the `pools` lines of GET /v1/queue, the scheduler's counters)
 * beside the workers and busy slots of GET /v1/workers. A pool appears when either side knows it.
 */
/** @param {{ q: QueueState | undefined, workers: WorkerView[] | undefined }} props */
function PoolsPanel({ q, workers }) {
  /**
   * @typedef {{ depth: import('@gantry/client').PriorityDepth | undefined, scheduled: number | undefined,
   *   waiting: number | undefined, workers: number, slots: number, busy: number }} PoolRow
   * @type {Map<string, PoolRow>}
   */
  const rows = new Map();
  /** @param {string} name @returns {PoolRow} */
  const row = (name) => {
    let r = rows.get(name);
    if (!r)
      rows.set(
        name,
        (r = { depth: undefined, scheduled: undefined, waiting: undefined, workers: 0, slots: 0, busy: 0 }),
      );
    return r;
  };
  for (const p of q?.pools ?? [])
    Object.assign(row(p.pool), { depth: p.depth, scheduled: p.scheduled, waiting: p.waiting });
  for (const w of workers ?? []) {
    const r = row(w.pool);
    r.workers++;
    r.slots += w.slots;
    r.busy += w.busy;
  }
  const names = [...rows.keys()].sort();
  const n = (/** @type {number | undefined} */ v) => (v === undefined ? '–' : v);
  return html`<section class="panel" aria-labelledby="pools-h">
    <h2 id="pools-h">Pools</h2>
    <table aria-label="Pools">
      <thead>
        <tr>
          <th>Pool</th>
          ${PRIORITIES.map((p) => html`<th class="num">Queued · ${p}</th>`)}
          <th class="num">Queued</th>
          <th class="num">Scheduled</th>
          <th class="num">Waiting</th>
          <th class="num">Workers</th>
          <th class="num">Busy slots</th>
        </tr>
      </thead>
      <tbody>
        ${names.map((name) => {
          const r = row(name);
          return html`<tr data-pool=${name}>
            <td>${name}</td>
            ${PRIORITIES.map((p) => html`<td class="num" data-testid=${`pool-${name}-${p}`}>${n(r.depth?.[p])}</td>`)}
            <td class="num" data-testid=${`pool-${name}-total`}>${n(r.depth?.total)}</td>
            <td class="num" data-testid=${`pool-${name}-scheduled`}>${n(r.scheduled)}</td>
            <td class="num" data-testid=${`pool-${name}-waiting`}>${n(r.waiting)}</td>
            <td class="num">${r.workers}</td>
            <td class="num">${r.busy} / ${r.slots}</td>
          </tr>`;
        })}
      </tbody>
    </table>
  </section>`;
}

/**
 * Tenants' fair share (GET /v1/tenants for an admin: every tenant; GET /v1/tenants/me for a client key: its own):
 * the share of the recent GPU-slot-seconds each used beside the share its weight entitles it to now.
 */
/** @param {{ session: Session }} props */
function TenantsPanel({ session }) {
  const { client, who } = session;
  const admin = who.role === 'admin';
  const { data, error } = usePoll(
    async () => (admin ? client.tenants.list() : [await client.tenants.me()]),
    2 * POLL_MS,
    [client, admin],
  );
  const one = (/** @type {number} */ v) => `${Number(v).toFixed(1)}%`;
  return html`<section class="panel" aria-labelledby="tenants-h">
    <h2 id="tenants-h">${admin ? 'Tenants' : `Tenant ${who.tenant}`} <span class="muted">fair share</span></h2>
    ${error && html`<p class="error" role="alert">Tenants: ${msg(error)}</p>`}
    ${
      data &&
      (data.length === 0
        ? html`<p class="muted">No tenant has work or recent usage.</p>`
        : html`<table aria-label="Tenants">
            <thead>
              <tr>
                <th>Tenant</th>
                <th class="num">Weight</th>
                <th class="num">Queued</th>
                <th class="num">Running</th>
                <th class="num">Used slot-seconds</th>
                <th>Share used</th>
                <th>Entitled</th>
              </tr>
            </thead>
            <tbody>
              ${data.map(
                (t) =>
                  html`<tr data-tenant=${t.tenant}>
                    <td>${t.tenant}</td>
                    <td class="num" data-testid=${`tenant-${t.tenant}-weight`}>${t.weight}</td>
                    <td class="num" data-testid=${`tenant-${t.tenant}-queued`}>${t.queued}</td>
                    <td class="num" data-testid=${`tenant-${t.tenant}-running`}>${t.running}</td>
                    <td class="num">${Number(t.usedSlotSeconds).toFixed(1)}</td>
                    <td>
                      <meter
                        min="0"
                        max="100"
                        value=${t.sharePercent}
                        aria-label=${`share used by ${t.tenant}`}
                      ></meter>
                      <span data-testid=${`tenant-${t.tenant}-share`}>${one(t.sharePercent)}</span>
                    </td>
                    <td>
                      <meter
                        min="0"
                        max="100"
                        value=${t.entitledPercent}
                        aria-label=${`share ${t.tenant} is entitled to`}
                      ></meter>
                      <span data-testid=${`tenant-${t.tenant}-entitled`}>${one(t.entitledPercent)}</span>
                    </td>
                  </tr>`,
              )}
            </tbody>
          </table>`)
    }
  </section>`;
}

// ---- job page --------------------------------------------------------------------------------------------------
/** @param {{ id: string, session: Session, config: UiConfig }} props */
function JobPage({ id, session, config }) {
  const { client, who } = session;
  const admin = who.role === 'admin';
  const [view, setView] = useState(/** @type {JobView | undefined} */ (undefined));
  const [events, setEvents] = useState(/** @type {JobEventMessage[]} */ ([]));
  const [error, setError] = useState(/** @type {unknown} */ (undefined));
  const [reload, setReload] = useState(0);
  const [notice, act] = useNotice();
  useEffect(() => {
    const stop = new AbortController();
    setEvents([]);
    (async () => {
      try {
        setView(await client.jobs.get(id, { signal: stop.signal }));
        for await (const e of client.jobs.events(id, { signal: stop.signal })) {
          setEvents((all) => [...all, e]);
          setView(e.data);
        }
      } catch (e) {
        if (!stop.signal.aborted) setError(e);
      }
    })();
    return () => stop.abort();
  }, [id, reload]);
  if (error) return html`<p class="error" role="alert">${statusOf(error) === 404 ? `No job ${id}.` : msg(error)}</p>`;
  if (!view) return html`<p class="muted">Loading job ${id}…</p>`;
  const trace =
    config.traceUrlTemplate && view.traceId ? config.traceUrlTemplate.replace('{traceId}', view.traceId) : null;
  /** @param {string} k @param {unknown} v */
  const field = (k, v) =>
    v === undefined || v === null || v === ''
      ? null
      : html`<dt>${k}</dt>
          <dd>${v}</dd>`;
  /** @param {() => Promise<unknown>} fn @param {string} label */
  const after = (fn, label) =>
    act(label, async () => {
      await fn();
      setReload((n) => n + 1);
    });
  return html`<section class="panel" aria-labelledby="job-h">
      <h2 id="job-h">Job <span class="mono">${view.id}</span> <${Status} s=${view.status} /></h2>
      <p>
        <progress max="100" value=${pct(view)} aria-label="job progress"></progress>
        ${` ${pct(view)}% ${view.progress?.stage ?? ''} · ETA ${eta(view)}`}
      </p>
      <dl class="fields">
        ${field('type', view.type)} ${field('priority', view.priority)} ${field('pool', view.pool)}
        ${field('tenant', view.tenant)} ${field('attempts', `${view.attempts} / ${view.maxAttempts}`)}
        ${field('generation', view.generation)} ${field('queue position', view.queuePosition)}
        ${field('runs at', view.runAt)}
        ${field('schedule', view.scheduleId ? html`<${Link} href="/ui/schedules" class="mono">${view.scheduleId}<//>` : undefined)}
        ${field('depends on', view.dependsOn?.length ? html`${view.dependsOn.map((d) => html`<${Link} href=${`/ui/jobs/${d}`} class="mono">${d}<//> `)}` : undefined)}
        ${field('created', view.createdAt)} ${field('started', view.startedAt)} ${field('finished', view.finishedAt)}
        ${field('elapsed', view.elapsedSeconds !== undefined ? `${view.elapsedSeconds.toFixed(1)} s` : undefined)}
        ${field('worker', view.workerId)} ${field('GPUs', view.gpus?.join(', '))}
        ${field('error', view.error ? `${view.error.code}: ${view.error.message}` : undefined)}
        ${field('result', view.result !== undefined ? html`<code>${JSON.stringify(view.result)}</code>` : undefined)}
        ${field('input', html`<code>${JSON.stringify(view.input)}</code>`)}
        ${field('trace', trace ? html`<a href=${trace} rel="noopener noreferrer" target="_blank">${view.traceId}</a>` : undefined)}
      </dl>
      ${
        admin &&
        html`<div class="actions" data-testid="job-admin">
          ${!isTerminalStatus(view.status) && html`<button type="button" onClick=${() => after(() => client.jobs.cancel(id), 'Cancel')}>Cancel</button>`}
          ${(view.status === 'failed' || view.status === 'cancelled') && html`<button type="button" onClick=${() => after(() => client.jobs.retry(id), 'Retry')}>Retry</button>`}
          ${
            ['scheduled', 'waiting', 'queued', 'retrying'].includes(view.status) &&
            html`<label
              >Priority
              <select
                aria-label="priority"
                value=${view.priority}
                onChange=${(/** @type {Event & { currentTarget: HTMLSelectElement }} */ e) =>
                  after(() => client.jobs.setPriority(id, /** @type {Priority} */ (e.currentTarget.value)), 'Priority')}
              >
                ${PRIORITIES.map((p) => html`<option value=${p}>${p}</option>`)}
              </select></label
            >`
          }
        </div>`
      }
      <${Notice} text=${notice} />
    </section>
    <section class="panel" aria-labelledby="outputs-h">
      <h2 id="outputs-h">Outputs</h2>
      ${
        view.outputs?.length
          ? html`<ul>
              ${view.outputs.map((o) => html`<li><a href=${o.downloadUrl ?? '#'} download=${o.name}>${o.name}</a> <span class="muted">${o.sizeBytes} bytes</span></li>`)}
            </ul>`
          : html`<p class="muted">None.</p>`
      }
    </section>
    <section class="panel" aria-labelledby="timeline-h">
      <h2 id="timeline-h">Timeline</h2>
      <ol class="timeline" aria-live="polite" data-testid="timeline">
        ${events.map(
          (e) =>
            html`<li>
              <span class="mono">#${e.sequence}</span> ${`${e.type} `}
              <span class="muted"
                >${when(e.timestamp)}
                ${e.data.progress ? ` · ${pct(e.data)}% ${e.data.progress.stage ?? ''}` : ''}</span
              >
            </li>`,
        )}
      </ol>
    </section>`;
}

// ---- workers, webhooks, schedules ------------------------------------------------------------------------------
/** @param {{ session: Session }} props */
function WorkersPage({ session }) {
  const { data, error } = usePoll(() => session.client.workers.list(), 2 * POLL_MS, [session.client]);
  return html`<section class="panel" aria-labelledby="workers-h">
    <h2 id="workers-h">Workers</h2>
    ${error && html`<p class="error" role="alert">${msg(error)}</p>`}
    ${
      data &&
      html`<table aria-label="Workers">
        <thead>
          <tr>
            <th>Worker</th>
            <th>Pool</th>
            <th>Busy slots</th>
            <th>GPUs</th>
            <th>Running jobs</th>
            <th>Heartbeat</th>
          </tr>
        </thead>
        <tbody>
          ${data.map(
            (w) =>
              html`<tr>
                <td class="mono">${w.id}</td>
                <td>${w.pool}</td>
                <td class="num">
                  <meter
                    min="0"
                    max=${Math.max(1, w.slots)}
                    value=${w.busy}
                    aria-label=${`busy slots of ${w.id}`}
                  ></meter>
                  ${w.busy} / ${w.slots}
                </td>
                <td>
                  ${
                    w.gpus.length
                      ? html`<ul>
                          ${w.gpus.map(
                            (g) =>
                              html`<li>
                                #${g.index} ${g.name} ·
                                ${g.memoryUsedMb !== undefined ? `${g.memoryUsedMb} / ` : ''}${g.memoryTotalMb} MB
                                ${g.utilizationPercent !== undefined ? ` · ${g.utilizationPercent}%` : ''}${g.health && g.health !== 'ok' ? ` · ${g.health}` : ''}
                              </li>`,
                          )}
                        </ul>`
                      : html`<span class="muted">none (CPU)</span>`
                  }
                </td>
                <td>
                  ${w.runningJobs.map((id) => html`<div><${Link} href=${`/ui/jobs/${id}`} class="mono">${id}<//></div>`)}
                </td>
                <td>${when(w.lastHeartbeatAt)}</td>
              </tr>`,
          )}
        </tbody>
      </table>`
    }
  </section>`;
}

/** @param {{ session: Session }} props */
function WebhooksPage({ session }) {
  const [notice, act] = useNotice();
  const { data, error } = usePoll(() => session.client.webhooks.failed({ limit: 100 }), 3 * POLL_MS, [session.client]);
  return html`<section class="panel" aria-labelledby="hooks-h">
    <h2 id="hooks-h">Failed webhooks</h2>
    ${error && html`<p class="error" role="alert">${msg(error)}</p>`}
    ${data && data.items.length === 0 && html`<p class="muted">None.</p>`}
    ${
      data &&
      data.items.length > 0 &&
      html`<table aria-label="Failed webhooks">
        <thead>
          <tr>
            <th>Event</th>
            <th>Job</th>
            <th>URL</th>
            <th>Attempts</th>
            <th>Last answer</th>
            <th>Failed at</th>
            <th>Actions</th>
          </tr>
        </thead>
        <tbody>
          ${data.items.map(
            (f) =>
              html`<tr data-webhook=${f.id}>
                <td>${f.type}</td>
                <td><${Link} href=${`/ui/jobs/${f.jobId}`} class="mono">${f.jobId}<//></td>
                <td class="mono">${f.url}</td>
                <td class="num">${f.attempts}</td>
                <td>${f.lastStatus ?? f.lastError ?? ''}</td>
                <td>${when(f.failedAt)}</td>
                <td>
                  <button
                    type="button"
                    onClick=${() => act(`Replay ${f.id}`, () => session.client.webhooks.replay(f.id))}
                  >
                    Replay
                  </button>
                </td>
              </tr>`,
          )}
        </tbody>
      </table>`
    }
    <${Notice} text=${notice} />
  </section>`;
}

/** @param {{ session: Session }} props */
function SchedulesPage({ session }) {
  const { client } = session;
  const [notice, act] = useNotice();
  const [tick, setTick] = useState(0);
  const { data, error } = usePoll(() => client.schedules.list({ limit: 100 }), 5 * POLL_MS, [client, tick]);
  const refresh = () => setTick((n) => n + 1);
  const blank = { name: '', cron: '', timezone: '', type: 'noop', input: '{}', priority: 'normal' };
  const [form, setForm] = useState(blank);
  /** @param {keyof typeof blank} k */
  const set = (k) => (/** @type {Event & { currentTarget: HTMLInputElement | HTMLSelectElement }} */ e) =>
    setForm({ ...form, [k]: e.currentTarget.value });
  /** @param {SubmitEvent} e */
  const create = (e) => {
    e.preventDefault();
    let input;
    try {
      input = JSON.parse(form.input || '{}');
    } catch {
      return void act('New schedule', () => Promise.reject(new Error('the input is not valid JSON')));
    }
    const req = {
      name: form.name,
      cron: form.cron,
      job: { type: form.type, input, priority: /** @type {Priority} */ (form.priority) },
      ...(form.timezone ? { timezone: form.timezone } : {}),
    };
    void act('New schedule', async () => {
      await client.schedules.create(req);
      setForm(blank);
      refresh();
    });
  };
  /** @param {string} label @param {() => Promise<unknown>} fn */
  const after = (label, fn) =>
    act(label, async () => {
      await fn();
      refresh();
    });
  const unserved = statusOf(error) === 404;
  return html`<section class="panel" aria-labelledby="sched-h">
      <h2 id="sched-h">Schedules <span class="muted">(tenant ${session.who.tenant})</span></h2>
      ${unserved && html`<p class="muted" role="status">This gateway does not serve schedules yet.</p>`}
      ${error && !unserved && html`<p class="error" role="alert">${msg(error)}</p>`}
      ${data && data.items.length === 0 && html`<p class="muted">None.</p>`}
      ${
        data &&
        data.items.length > 0 &&
        html`<table aria-label="Schedules">
          <thead>
            <tr>
              <th>Name</th>
              <th>Cron</th>
              <th>Time zone</th>
              <th>Job</th>
              <th>Overlap</th>
              <th>State</th>
              <th>Next run</th>
              <th>Last job</th>
              <th>Actions</th>
            </tr>
          </thead>
          <tbody>
            ${data.items.map(
              (s) =>
                html`<tr data-schedule=${s.id}>
                  <td>${s.name}</td>
                  <td class="mono">${s.cron}</td>
                  <td>${s.timezone}</td>
                  <td>${s.job.type} · ${s.job.priority ?? 'normal'}</td>
                  <td>${s.overlap}</td>
                  <td data-testid=${`schedule-${s.id}-state`}>${s.paused ? 'paused' : 'active'}</td>
                  <td>${s.nextRunAt ? new Date(s.nextRunAt).toLocaleString() : '–'}</td>
                  <td>
                    ${s.lastJobId ? html`<${Link} href=${`/ui/jobs/${s.lastJobId}`} class="mono">${s.lastJobId}<//>` : '–'}
                  </td>
                  <td>
                    ${
                      s.paused
                        ? html`<button
                            type="button"
                            onClick=${() => after(`Resume ${s.name}`, () => client.schedules.resume(s.id))}
                          >
                            Resume
                          </button>`
                        : html`<button
                            type="button"
                            onClick=${() => after(`Pause ${s.name}`, () => client.schedules.pause(s.id))}
                          >
                            Pause
                          </button>`
                    }
                    <button
                      type="button"
                      class="danger"
                      onClick=${() => confirm(`Delete the schedule ${s.name}?`) && after(`Delete ${s.name}`, () => client.schedules.delete(s.id))}
                    >
                      Delete
                    </button>
                  </td>
                </tr>`,
            )}
          </tbody>
        </table>`
      }
      <${Notice} text=${notice} />
    </section>
    ${
      !unserved &&
      html`<section class="panel" aria-labelledby="new-sched-h">
        <h2 id="new-sched-h">New schedule</h2>
        <form class="inline" onSubmit=${create} aria-label="New schedule">
          <label>Name <input required value=${form.name} onInput=${set('name')} /></label>
          <label
            >Cron <input required class="mono" placeholder="*/5 * * * *" value=${form.cron} onInput=${set('cron')}
          /></label>
          <label>Time zone <input placeholder="UTC" value=${form.timezone} onInput=${set('timezone')} /></label>
          <label>Job type <input required value=${form.type} onInput=${set('type')} /></label>
          <label>Input (JSON) <input class="mono" value=${form.input} onInput=${set('input')} /></label>
          <label
            >Priority
            <select value=${form.priority} onChange=${set('priority')}>
              ${PRIORITIES.map((p) => html`<option value=${p}>${p}</option>`)}
            </select></label
          >
          <button type="submit">Create</button>
        </form>
      </section>`
    }`;
}

const root = document.getElementById('app');
if (!root) throw new Error('index.html has no #app element');
render(html`<${App} />`, root);
