import type { FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import { acceptsGzip, loadStaticFiles, notModified, type StaticFile } from './static-files.ts';

/** The policy the UI is built to: no inline script, nothing from elsewhere, never framed. See docs/dashboard.md. */
export const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; " +
  "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tenement dashboard not built</title></head>
<body><h1>The dashboard is not built</h1>
<p>Run <code>npm run build:dashboard</code> in the Tenement checkout, then reload this page.
The management API (<code>/api</code>) works without it.</p></body></html>
`;

/** How often a missing build is looked for again (it may be built while the server runs). */
const RELOAD_EVERY_MS = 2_000;

function securityHeaders(reply: FastifyReply): void {
  void reply.header('content-security-policy', CSP);
  void reply.header('x-frame-options', 'DENY');
  void reply.header('x-content-type-options', 'nosniff');
  void reply.header('referrer-policy', 'no-referrer');
}

/** `GET /`, `/index.html`, `/assets/*` and the other top-level files of the build, from memory. */
export function staticRoutes(api: PluginContext['api'], distDir: string, log: PluginContext['log']): void {
  let files = loadStaticFiles(distDir);
  let lookedAt = Date.now();
  if (!files) log.warn({ distDir }, 'the dashboard is not built: GET / answers 503 until `npm run build:dashboard` is run');

  const current = (): Map<string, StaticFile> | undefined => {
    if (!files && Date.now() - lookedAt >= RELOAD_EVERY_MS) {
      lookedAt = Date.now();
      files = loadStaticFiles(distDir);
    }
    return files;
  };

  const send = (request: FastifyRequest, reply: FastifyReply, urlPath: string): unknown => {
    securityHeaders(reply);
    const built = current();
    if (!built) {
      if (urlPath !== '/index.html') throw new TenementError(ErrorCodes.NOT_FOUND, `no file ${urlPath}: the dashboard is not built`);
      void reply.status(503).header('cache-control', 'no-store').type('text/html; charset=utf-8');
      return NOT_BUILT;
    }
    const file = built.get(urlPath);
    if (!file) throw new TenementError(ErrorCodes.NOT_FOUND, `no file ${urlPath}`);
    const gzip = file.gzip !== null && acceptsGzip(request.headers['accept-encoding']);
    const etag = gzip ? `"${file.etag.slice(1, -1)}-gz"` : file.etag;
    void reply.header('cache-control', file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
    void reply.header('etag', etag);
    if (file.gzip !== null) void reply.header('vary', 'Accept-Encoding');
    if (notModified(request.headers['if-none-match'], file.etag)) return reply.status(304).send();
    void reply.type(file.type);
    if (gzip) void reply.header('content-encoding', 'gzip');
    return reply.send(gzip ? file.gzip : file.body);
  };

  const page = (url: string, summary: string, pathOf: (request: FastifyRequest) => string): void => {
    api.route({
      method: 'GET',
      url,
      summary,
      tags: ['dashboard'],
      access: 'public',
      handler: ({ request, reply }) => send(request, reply, pathOf(request)),
    });
  };
  page('/', 'The dashboard (its index.html; 503 with instructions when it is not built)', () => '/index.html');
  // Only names: a parameter never holds a '/', and the Map decides whether the name is a file.
  page('/:file', 'A top-level file of the dashboard build (favicon...)', (request) => `/${(request.params as { file: string }).file}`);
  page('/assets/*', "The dashboard's content-hashed assets (cached for a year)", (request) => `/assets/${(request.params as { '*': string })['*']}`);
}
