import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** One built file, held in memory with its headers' values worked out once. */
export interface StaticFile {
  body: Buffer;
  /** The gzipped body, when that is smaller. */
  gzip: Buffer | null;
  type: string;
  etag: string;
  /** Vite's content-hashed files (`/assets/*`) never change under their name. */
  immutable: boolean;
}

const TYPES: ReadonlyMap<string, string> = new Map([
  ['.html', 'text/html; charset=utf-8'],
  ['.js', 'text/javascript; charset=utf-8'],
  ['.mjs', 'text/javascript; charset=utf-8'],
  ['.css', 'text/css; charset=utf-8'],
  ['.json', 'application/json; charset=utf-8'],
  ['.map', 'application/json; charset=utf-8'],
  ['.txt', 'text/plain; charset=utf-8'],
  ['.svg', 'image/svg+xml'],
  ['.png', 'image/png'],
  ['.jpg', 'image/jpeg'],
  ['.jpeg', 'image/jpeg'],
  ['.gif', 'image/gif'],
  ['.webp', 'image/webp'],
  ['.ico', 'image/x-icon'],
  ['.woff', 'font/woff'],
  ['.woff2', 'font/woff2'],
  ['.ttf', 'font/ttf'],
  ['.wasm', 'application/wasm'],
  ['.webmanifest', 'application/manifest+json'],
]);
const COMPRESSIBLE = new Set(['.html', '.js', '.mjs', '.css', '.json', '.map', '.txt', '.svg', '.ttf', '.ico', '.webmanifest']);

/** A build is a few hundred kilobytes; a dist/ far past this is not one, and is not read into memory. */
const MAX_TOTAL_BYTES = 64 * 1024 * 1024;
const MAX_FILES = 2_000;
const MAX_DEPTH = 4;

/**
 * Every regular file under `dir`, keyed by its URL path (`/index.html`, `/assets/index-3f2a.js`). Read once:
 * requests are answered from this Map and never turned into file paths, so no URL can reach another file.
 * Links are not followed. Undefined when there is no `index.html` (the UI was not built).
 */
export function loadStaticFiles(dir: string): Map<string, StaticFile> | undefined {
  const files = new Map<string, StaticFile>();
  let total = 0;
  const walk = (folder: string, prefix: string, depth: number): void => {
    let names: string[];
    try {
      names = readdirSync(folder).sort();
    } catch {
      return;
    }
    for (const name of names) {
      const full = path.join(folder, name);
      const stat = lstatSync(full, { throwIfNoEntry: false });
      if (!stat) continue;
      if (stat.isDirectory() && depth < MAX_DEPTH) walk(full, `${prefix}${name}/`, depth + 1);
      if (!stat.isFile() || files.size >= MAX_FILES || total + stat.size > MAX_TOTAL_BYTES) continue;
      const body = readFileSync(full);
      total += body.length;
      const url = `${prefix}${name}`;
      files.set(url, describe(url, body));
    }
  };
  walk(dir, '/', 0);
  return files.has('/index.html') ? files : undefined;
}

function describe(url: string, body: Buffer): StaticFile {
  const ext = path.extname(url).toLowerCase();
  // zlib is taken when a file is first read (static-routes.ts): an idle server never loads it.
  const zipped = COMPRESSIBLE.has(ext) && body.length > 256 ? process.getBuiltinModule('node:zlib').gzipSync(body, { level: 9 }) : null;
  return {
    body,
    gzip: zipped && zipped.length < body.length ? zipped : null,
    type: TYPES.get(ext) ?? 'application/octet-stream',
    etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
    immutable: url.startsWith('/assets/'),
  };
}

/** Whether `If-None-Match` names this file's current version (either encoding: they share the ETag base). */
export function notModified(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false;
  const base = etag.slice(1, -1);
  return ifNoneMatch.split(',').some((tag) => {
    const t = tag.trim().replace(/^W\//, '');
    return t === '*' || t === etag || t === `"${base}-gz"`;
  });
}

export function acceptsGzip(acceptEncoding: string | undefined): boolean {
  if (!acceptEncoding) return false;
  return acceptEncoding.split(',').some((part) => {
    const [coding, ...params] = part.trim().toLowerCase().split(';');
    if (coding !== 'gzip' && coding !== 'x-gzip') return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}
