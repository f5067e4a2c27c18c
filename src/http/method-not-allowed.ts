import type { Hono } from 'hono';

/** A path of `app.routes` as a RegExp: `:name` is one segment, `:name{re}` that pattern, `*` anything. */
function routePattern(path: string): RegExp {
  const source = path
    .split('/')
    .map((segment) => {
      if (segment === '*') return '.*';
      const param = /^:[A-Za-z_][A-Za-z0-9_]*(?:\{(.+)\})?$/.exec(segment);
      if (param) return param[1] ? `(?:${param[1]})` : '[^/]+';
      return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  return new RegExp(`^${source}$`);
}

/**
 * The methods `app` serves at a path, for a 405 with `Allow` instead of a 404 when the path is
 * right and the method is not (RFC 9110 section 15.5.6). Built from the app's own routes on first
 * use, so it cannot drift from them; middlewares (method ALL) are not routes.
 */
export function methodsAt(app: Hono): (path: string) => string[] {
  let table: { pattern: RegExp; method: string }[] | null = null;
  return (path) => {
    table ??= app.routes.filter((r) => r.method !== 'ALL').map((r) => ({ pattern: routePattern(r.path), method: r.method }));
    const methods = new Set(table.filter((r) => r.pattern.test(path)).map((r) => r.method));
    if (methods.has('GET')) methods.add('HEAD');
    return [...methods].sort();
  };
}
