import { Hono } from 'hono';
import { html } from 'hono/html';
import { PAGE_HEADERS, renderPage, type Html } from '../dashboard/layout.ts';
import { OPERATOR_SCOPES, buildOpenApiDocument } from './openapi.ts';

type Json = Record<string, unknown>;

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

/** The document's prose with its `code` spans as <code>: each part escaped by html``, never raw. */
function prose(text: string): Html[] {
  return text.split(/(`[^`]+`)/).map((part) => (part.length > 2 && part.startsWith('`') && part.endsWith('`') ? html`<code>${part.slice(1, -1)}</code>` : html`${part}`));
}

/** A one-line type for a JSON Schema: `Lease`, `string[]`, `"active" | "revoked"`. */
function describeType(schema: Json | undefined): string {
  if (!schema) return '';
  if (typeof schema.$ref === 'string') return schema.$ref.split('/').pop()!;
  if ('const' in schema) return JSON.stringify(schema.const);
  if (Array.isArray(schema.enum)) return schema.enum.map((v) => JSON.stringify(v)).join(' | ');
  if (schema.type === 'array') return `${describeType(schema.items as Json)}[]`;
  if (Array.isArray(schema.type)) return schema.type.join(' | ');
  if (Array.isArray(schema.anyOf)) return (schema.anyOf as Json[]).map(describeType).join(' | ');
  if (schema.not && Object.keys(schema.not as Json).length === 0) return 'refused';
  return typeof schema.type === 'string' ? schema.type : 'any';
}

/** Constraints worth a reader's eye: length, range, pattern, default. */
function describeLimits(s: Json): string {
  const parts: string[] = [];
  if (s.minLength !== undefined || s.maxLength !== undefined) parts.push(`length ${s.minLength ?? 0}..${s.maxLength ?? '∞'}`);
  if (s.minimum !== undefined || s.maximum !== undefined) parts.push(`${s.minimum ?? '-∞'}..${s.maximum ?? '∞'}`);
  if (typeof s.pattern === 'string') parts.push(`pattern ${s.pattern}`);
  if (s.default !== undefined) parts.push(`default ${JSON.stringify(s.default)}`);
  return parts.join('; ');
}

function renderFields(rows: { name: string; where?: string; required: boolean; schema: Json; description?: string }[]): Html {
  if (rows.length === 0) return html``;
  return html`<table><tr><th>name</th><th>type</th><th>required</th><th>notes</th></tr>${rows.map(
    (r) => html`<tr><td class="nowrap"><code>${r.name}</code>${r.where ? html` <span class="muted">(${r.where})</span>` : ''}</td><td><code>${describeType(r.schema)}</code></td><td>${r.required ? 'yes' : ''}</td><td>${[r.description ?? (r.schema.description as string | undefined), describeLimits(r.schema)].filter(Boolean).map((t) => t!.replace(/\.$/, '')).join('. ')}</td></tr>`,
  )}</table>`;
}

function renderBodyFields(body: Json | undefined, schemas: Record<string, Json>): Html {
  const content = body?.content as Record<string, { schema: Json }> | undefined;
  if (!content) return html``;
  return html`${Object.entries(content).map(([type, { schema }]) => {
    const target = typeof schema.$ref === 'string' ? schemas[schema.$ref.split('/').pop()!] : schema;
    const props = (target?.properties ?? {}) as Record<string, Json>;
    const required = new Set((target?.required as string[] | undefined) ?? []);
    return html`<p>Body <code>${type}</code>${body?.required ? '' : ' (optional)'}: <code>${describeType(schema)}</code></p>${renderFields(Object.entries(props).map(([name, s]) => ({ name, required: required.has(name), schema: s })))}`;
  })}`;
}

function describeSecurity(op: Json): string {
  const alternatives = (op.security as Record<string, string[]>[] | undefined) ?? [];
  if (alternatives.length === 0) return 'none';
  return alternatives
    .map((a) => Object.entries(a).map(([scheme, scopes]) => (scopes.length ? `${scheme} with ${scopes.join(' ')}` : scheme)).join(' + ') || 'anonymous')
    .join(', or ');
}

function renderOperation(path: string, method: string, op: Json, schemas: Record<string, Json>): Html {
  const params = ((op.parameters as Json[] | undefined) ?? []).map((p) => ({ name: String(p.name), where: String(p.in), required: p.required === true, schema: p.schema as Json, ...(typeof p.description === 'string' ? { description: p.description } : {}) }));
  const responses = Object.entries((op.responses ?? {}) as Record<string, Json>);
  return html`<section class="op" id="${String(op.operationId ?? `${method}-${path}`)}">
<h3><span class="method">${method.toUpperCase()}</span> <code>${path}</code></h3>
<p>${prose(String(op.summary))}${op.description ? html`<br><span class="muted">${prose(String(op.description))}</span>` : ''}</p>
<p class="muted">Authorization: ${describeSecurity(op)}</p>
${renderFields(params)}${renderBodyFields(op.requestBody as Json | undefined, schemas)}
<p>Responses: ${responses.map(([status, r]) => {
    const content = r.content as Record<string, { schema: Json }> | undefined;
    const shape = content ? Object.values(content).map((c) => describeType(c.schema)).join(', ') : '';
    return html`<span class="tag">${status}</span>${prose(String(r.description ?? ''))}${shape ? html` <code>${shape}</code>` : ''}; `;
  })}</p></section>`;
}

/** The API reference, rendered from the same OpenAPI document as /openapi.json, so the two agree. */
export function renderDocs(issuer: string): Html {
  const doc = buildOpenApiDocument(issuer);
  const schemas = (doc.components as { schemas: Record<string, Json> }).schemas;
  const info = doc.info as { title: string; version: string; description: string };
  const ops = Object.entries(doc.paths).flatMap(([path, item]) => METHODS.filter((m) => item[m]).map((m) => ({ path, method: m, op: item[m]! })));
  const tags = doc.tags as { name: string; description: string }[];
  const body = html`<p>${info.description.split('\n')[0]}</p>
<p>Machine-readable: <a href="openapi.json">/openapi.json</a> (OpenAPI ${String(doc.openapi)}). Server: <code>${issuer}</code></p>
<h2>Operator scopes</h2><p class="muted">Granted by policy like any other scope, to tokens whose audience is <code>${issuer}</code>.</p>
<table>${Object.entries(OPERATOR_SCOPES).map(([scope, what]) => html`<tr><td class="nowrap"><code>${scope}</code></td><td>${what}</td></tr>`)}</table>
${tags.map((t) => {
    const mine = ops.filter((o) => o.op.tags.includes(t.name));
    return html`<h2>${t.name} <span class="muted">— ${prose(t.description)}</span></h2>${mine.map((o) => renderOperation(o.path, o.method, o.op, schemas))}`;
  })}`;
  return renderPage(`${info.title} API`, html`<h1>${info.title} API <span class="muted">${info.version}</span></h1>`, body);
}

/** GET /docs: plain server-rendered HTML, no script, no external assets. */
export function docsRoutes(): Hono {
  const app = new Hono();
  app.get('/docs', (c) => c.html(renderDocs(c.get('deps').config.issuer), 200, { ...PAGE_HEADERS, 'Cache-Control': 'public, max-age=300' }));
  return app;
}
