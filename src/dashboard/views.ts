import { html } from 'hono/html';
import type { AuditEvent } from '../audit/events.ts';
import type { Lease } from '../leases/lease.ts';
import { renderPage, type Html } from './layout.ts';
import type { Overview } from './overview.ts';

/**
 * Every value below reaches the page through hono's `html` tag, which escapes it: subjects, rule
 * names, reasons and claim values are attacker-influenced and must never become markup.
 */

const title = html`<h1>Leash operator dashboard</h1>`;

const isoTime = (epochSeconds: number): string => new Date(epochSeconds * 1000).toISOString().replace('.000Z', 'Z');

function inWords(seconds: number): string {
  if (seconds <= 0) return 'now';
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${s}s` : `${s}s`;
}

export type Notice = { kind: 'ok' | 'bad'; text: string } | null;

const renderNotice = (n: Notice): Html => (n ? html`<p class="notice ${n.kind}" role="status">${n.text}</p>` : html``);

/** The sign-in form. The token field is never pre-filled, so a refused token is not echoed back. */
export function renderLogin(n: Notice): Html {
  return renderPage(
    'Leash dashboard: sign in',
    title,
    html`${renderNotice(n)}
<h2>Sign in with an operator token</h2>
<p class="muted">Paste a Leash access token whose audience is this broker and that carries <code>leash:leases:read</code> or <code>leash:admin</code>
(for example from <code>leash exchange</code> with your IdP's token). It is kept in an HttpOnly cookie for this page only and checked again on every request.</p>
<form method="post" action="/dashboard/login" autocomplete="off">
<label for="token">Operator token</label>
<textarea id="token" name="token" required spellcheck="false" autocomplete="off"></textarea>
<p><button class="primary" type="submit">Sign in</button></p>
</form>`,
  );
}

export function renderMessage(heading: string, n: Notice): Html {
  return renderPage(`Leash dashboard: ${heading}`, title, html`<h2>${heading}</h2>${renderNotice(n)}<p><a href="/dashboard">Back to the dashboard</a></p>`);
}

export interface DashboardView {
  operator: { sub: string; scopes: string[]; expiresAt: number };
  nowSeconds: number;
  csrf: string;
  canRevoke: boolean;
  overview: Overview;
  notice: Notice;
}

function renderCounts(label: string, rows: [string, number][]): Html {
  if (rows.length === 0) return html`<p class="muted">none</p>`;
  return html`<table><tr><th>${label}</th><th class="num">active</th></tr>${rows.map(([k, n]) => html`<tr><td class="mono">${k}</td><td class="num">${n}</td></tr>`)}</table>`;
}

function renderRevokeButton(v: DashboardView, lease: Lease): Html {
  if (!v.canRevoke) return html`<span class="muted">needs leash:leases:revoke</span>`;
  return html`<form class="inline" method="post" action="/dashboard/leases/${encodeURIComponent(lease.id)}/revoke">
<input type="hidden" name="csrf" value="${v.csrf}"><button class="danger" type="submit" data-lease="${lease.id}" aria-label="Revoke lease ${lease.id}">Revoke</button></form>`;
}

function renderExpiries(v: DashboardView): Html {
  const leases = v.overview.soonest;
  if (leases.length === 0) return html`<p class="muted">No active leases.</p>`;
  return html`<table id="expiring"><tr><th>lease</th><th>kind</th><th>rule</th><th>subject</th><th>scopes</th><th>task</th><th>expires</th><th></th></tr>
${leases.map(
  (l) => html`<tr data-lease-id="${l.id}"><td class="mono">${l.id}</td><td>${l.kind}</td><td>${l.rule}</td><td class="mono">${l.subject}</td><td class="mono">${l.scopes.join(' ')}</td><td class="mono">${l.task_id ?? ''}</td>
<td class="nowrap" title="${isoTime(l.expires_at)}">in ${inWords(l.expires_at - v.nowSeconds)}</td><td>${renderRevokeButton(v, l)}</td></tr>`,
)}</table>`;
}

function renderDenials(denials: AuditEvent[] | null): Html {
  if (denials === null) return html`<p class="muted">Reading denials needs <code>leash:audit:read</code>.</p>`;
  if (denials.length === 0) return html`<p class="muted">No denied exchanges recorded.</p>`;
  return html`<table id="denials"><tr><th>time</th><th>subject</th><th>issuer</th><th>rule</th><th>reason</th><th>client</th><th>request</th></tr>
${denials.map(
  (e) => html`<tr><td class="nowrap">${new Date(e.time).toISOString()}</td><td class="mono">${e.subject ?? e.actor ?? ''}</td><td>${e.issuer ?? ''}</td><td>${e.rule ?? ''}</td><td>${e.reason ?? ''}</td><td class="mono">${e.client_addr ?? ''}</td><td class="mono">${e.request_id ?? ''}</td></tr>`,
)}</table>`;
}

export function renderDashboard(v: DashboardView): Html {
  const o = v.overview;
  const header = html`${title}<span class="who">${v.operator.sub} · ${v.operator.scopes.join(' ')} · session ends in ${inWords(v.operator.expiresAt - v.nowSeconds)}</span>
<form class="inline" method="post" action="/dashboard/logout"><input type="hidden" name="csrf" value="${v.csrf}"><button type="submit">Sign out</button></form>`;
  const scanNote = o.truncated ? html`<p class="muted">Grouped from the newest ${o.scanned} active leases; use the operator API filters for the rest.</p>` : html``;
  return renderPage(
    'Leash dashboard',
    header,
    html`${renderNotice(v.notice)}
<div class="grid">
<div class="card"><div class="muted">Active leases</div><div class="big" id="active-total">${o.activeTotal}</div></div>
<div class="card"><div class="muted">Rules with active leases</div><div class="big">${o.byRule.length}</div></div>
<div class="card"><div class="muted">Subjects with active leases</div><div class="big">${o.subjects}</div></div>
</div>${scanNote}
<div class="grid">
<section><h2>By rule</h2>${renderCounts('rule', o.byRule)}</section>
<section><h2>By subject${o.subjects > o.bySubject.length ? html` <span class="muted">(top ${o.bySubject.length})</span>` : ''}</h2>${renderCounts('subject', o.bySubject)}</section>
</div>
<h2>Soonest expiries</h2>${renderExpiries(v)}
<h2>Recent denials</h2>${renderDenials(o.denials)}`,
  );
}
