import { statSync } from 'node:fs';
import path from 'node:path';
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
  const builtAt = (): number => statSync(path.join(distDir, 'index.html'), { throwIfNoEntry: false })?.mtimeMs ?? 0;
  let version = builtAt();
  // Read (and gzipped) on the first request for a file, not at start-up: a server nobody opens the dashboard of
  // never holds its ~200 KB of files, nor zlib (bench/footprint.ts).
  let files: Map<string, StaticFile> | undefined | null = null;
  let lookedAt = Date.now();
  if (version === 0) log.warn({ distDir }, 'the dashboard is not built: GET / answers 503 until `npm run build:dashboard` is run');

  // A build made (or remade) while the server runs is picked up: index.html's time is looked at every 2 s at most.
  const current = (urlPath: string): Map<string, StaticFile> | undefined => {
    if (files === null) {
      lookedAt = Date.now();
      version = builtAt();
      files = loadStaticFiles(distDir);
    } else if ((!files || urlPath === '/index.html') && Date.now() - lookedAt >= RELOAD_EVERY_MS) {
      lookedAt = Date.now();
      const now = builtAt();
      if (now !== version || !files) {
        version = now;
        files = loadStaticFiles(distDir);
      }
    }
    return files;
  };

  const send = (request: FastifyRequest, reply: FastifyReply, urlPath: string): unknown => {
    securityHeaders(reply);
    const built = current(urlPath);
    if (!built) {
      // A browser gets a page saying what to do; a script the API's coded 404 saying the same.
      if (urlPath !== '/index.html' || !String(request.headers.accept ?? '').includes('text/html')) {
        throw new TenementError(ErrorCodes.NOT_FOUND, `no file ${urlPath}: the dashboard is not built (run npm run build:dashboard)`);
      }
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
