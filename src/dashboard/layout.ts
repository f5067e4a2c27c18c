import { createHash } from 'node:crypto';
import { html, raw } from 'hono/html';

/** What hono's `html` tag returns: every interpolated string is HTML-escaped, nested templates are not re-escaped. */
export type Html = ReturnType<typeof html>;

/** One inline stylesheet for the dashboard and /docs: no external assets, nothing to fetch. */
const CSS = `
:root{color-scheme:light dark;--fg:#1b1f24;--muted:#57606a;--bg:#fff;--card:#f6f8fa;--line:#d0d7de;--accent:#0969da;--bad:#cf222e;--ok:#1a7f37}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#8d96a0;--bg:#0d1117;--card:#161b22;--line:#30363d;--accent:#4493f8;--bad:#f85149;--ok:#3fb950}}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;align-items:center;gap:1rem;padding:.75rem 1.5rem;border-bottom:1px solid var(--line)}
header h1{font-size:1.1rem;margin:0}header .who{margin-left:auto;color:var(--muted)}
main{padding:1rem 1.5rem;max-width:1200px}
h2{font-size:1rem;margin:1.5rem 0 .5rem}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));gap:1rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.75rem 1rem}
.big{font-size:1.8rem;font-weight:600}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px;word-break:break-all}
button{font:inherit;padding:.25rem .7rem;border-radius:6px;border:1px solid var(--line);background:var(--bg);color:var(--fg);cursor:pointer}
button.danger{color:var(--bad);border-color:var(--bad)}button.primary{background:var(--accent);color:#fff;border-color:var(--accent)}
textarea{width:100%;min-height:8rem;font-family:ui-monospace,monospace;font-size:12px;padding:.5rem;border:1px solid var(--line);border-radius:6px;background:var(--bg);color:var(--fg)}
.notice{padding:.5rem .75rem;border-radius:6px;border:1px solid var(--line);margin:.75rem 0}.notice.bad{border-color:var(--bad);color:var(--bad)}.notice.ok{border-color:var(--ok);color:var(--ok)}
.muted{color:var(--muted)}.method{display:inline-block;min-width:4.2em;font-weight:700;font-family:ui-monospace,monospace}
.op{border:1px solid var(--line);border-radius:6px;padding:.5rem 1rem;margin:.6rem 0}.op h3{margin:.2rem 0;font-size:.95rem}
.tag{display:inline-block;padding:0 .4rem;border-radius:4px;background:var(--card);border:1px solid var(--line);font-size:12px;margin-right:.25rem}
form.inline{display:inline;margin:0}.nowrap{white-space:nowrap}
`;

const STYLE_HASH = createHash('sha256').update(CSS).digest('base64');

/**
 * Headers for every HTML page: the CSP allows only this stylesheet (by hash) and same-origin form
 * posts, so an injected tag could neither run script nor send a form elsewhere.
 */
export const PAGE_HEADERS: Record<string, string> = {
  'Content-Security-Policy': `default-src 'none'; style-src 'sha256-${STYLE_HASH}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  // not no-referrer: under it browsers send "Origin: null" on form posts, defeating the origin check
  'Referrer-Policy': 'same-origin',
};

export function renderPage(title: string, header: Html, body: Html): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="same-origin"><title>${title}</title><style>${raw(CSS)}</style></head>
<body><header>${header}</header><main>${body}</main></body></html>`;
}
