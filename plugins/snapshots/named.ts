/**
 * Named snapshots on disk (docs/snapshots.md): `<dataDir>/.snapshots/_named/<service>/<id>/<name>/` holds
 * `meta.json` and `snapshot.tar.zst` (the CRIU images and the DATA_DIR copy, archive.ts). `_named` cannot be a
 * service name (a DNS label has no `_`), and a name starts with a letter or digit, so the scratch folders (`.new-*`,
 * `.restore-*`) are never taken for snapshots. Every folder root's and 0700, every file root's and 0600. A snapshot
 * is written into a scratch folder and renamed into place when complete: a failed or refused one leaves nothing.
 */
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import { imageDir, readMetaText, snapshotsRoot, type ImageMeta } from './images.ts';

export const ARCHIVE = 'snapshot.tar.zst';
const META = 'meta.json';

/** A snapshot name: a lowercase letter or digit, then up to 62 of those or '-'. */
export const SNAPSHOT_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** Names that are keys of every JavaScript object: refused, so no code path can ever confuse one with a property. */
const RESERVED: ReadonlySet<string> = new Set(['constructor', 'prototype', 'tostring', 'valueof', 'hasownproperty']);

export function checkSnapshotName(name: unknown): string {
  if (typeof name !== 'string' || !SNAPSHOT_NAME.test(name) || RESERVED.has(name)) {
    const shown = typeof name === 'string' ? JSON.stringify(name.slice(0, 80)) : typeof name;
    throw new TenementError(ErrorCodes.BAD_NAME, `snapshot name ${shown} is not allowed: expected a lowercase letter or digit, then up to 62 lowercase letters, digits or '-' (not a reserved word)`);
  }
  return name;
}

export interface SnapshotMeta {
  name: string;
  service: string;
  id: string;
  uid: number;
  /** When it was taken (ms since the epoch). */
  createdAt: number;
  /** The archive's size on disk, and what it holds uncompressed (images + DATA_DIR). */
  bytes: number;
  rawBytes: number;
  imageBytes: number;
  dataBytes: number;
  /** The dump, of which the process was frozen for `frozenMs` (images written, DATA_DIR copied); packing. */
  dumpMs: number;
  frozenMs: number;
  packMs: number;
  image: ImageMeta;
}

/** `<dataDir>/.snapshots/_named/<service>/<id>`: every named snapshot of one instance. */
export function instanceSnapshots(dataDir: string, service: string, id: string): string {
  const own = imageDir(dataDir, service, id);
  return path.join(snapshotsRoot(dataDir), '_named', path.basename(path.dirname(own)), path.basename(own));
}

/** Makes `dir` and the folders above it up to `.snapshots`, each root's 0700. */
export function ownFolder(dataDir: string, dir: string): void {
  const root = snapshotsRoot(dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (let at = dir; at.startsWith(root); at = path.dirname(at)) chmodSync(at, 0o700);
}

export function scratch(dataDir: string, dir: string, kind: 'new' | 'restore'): string {
  ownFolder(dataDir, dir);
  const made = mkdtempSync(path.join(dir, `.${kind}-`));
  chmodSync(made, 0o700);
  return made;
}

function readSnapshotMeta(dir: string): SnapshotMeta | null {
  let text: string;
  try {
    text = readFileSync(path.join(dir, META), 'utf8');
  } catch {
    return null;
  }
  try {
    const parsed = JSON.parse(text) as Record<string, unknown>;
    if (!parsed || typeof parsed !== 'object' || typeof parsed.name !== 'string' || typeof parsed.service !== 'string' || typeof parsed.id !== 'string') return null;
    for (const key of ['uid', 'createdAt', 'bytes', 'rawBytes', 'imageBytes', 'dataBytes', 'dumpMs', 'frozenMs', 'packMs'] as const) if (!Number.isInteger(parsed[key])) return null;
    const image = readMetaText(JSON.stringify(parsed.image));
    return { ...(parsed as unknown as SnapshotMeta), image };
  } catch {
    return null;
  }
}

export function writeSnapshotMeta(dir: string, meta: SnapshotMeta): void {
  writeFileSync(path.join(dir, META), JSON.stringify(meta), { mode: 0o600 });
}

/** The instance's snapshots, oldest first (a folder without a readable meta.json is no snapshot). */
export function listSnapshots(dir: string): SnapshotMeta[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const found: SnapshotMeta[] = [];
  for (const name of names) {
    if (!SNAPSHOT_NAME.test(name)) continue;
    const meta = readSnapshotMeta(path.join(dir, name));
    if (meta && meta.name === name) found.push(meta);
  }
  return found.sort((a, b) => a.createdAt - b.createdAt || (a.name < b.name ? -1 : 1));
}

/** One snapshot by name, looked up in a Map of what is on disk. */
export function findSnapshot(dir: string, name: string): SnapshotMeta | undefined {
  return new Map(listSnapshots(dir).map((meta) => [meta.name, meta])).get(name);
}

/** Scratch folders left by a server that stopped mid-way. */
export function removeScratch(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) if (name.startsWith('.new-') || name.startsWith('.restore-')) rmSync(path.join(dir, name), { recursive: true, force: true });
}

/**
 * Makes room for a new snapshot of `bytes` under the service's `keep` and `maxBytes`, deleting the oldest first.
 * Refused (nothing deleted) when it could not fit even alone.
 */
export function makeRoom(dir: string, bytes: number, limits: { keep: number; maxBytes: number }, field: string): SnapshotMeta[] {
  if (bytes > limits.maxBytes) {
    throw new TenementError(ErrorCodes.SNAPSHOT_BUDGET, `the snapshot takes ${bytes} bytes compressed, more than ${field}.maxBytes (${limits.maxBytes}) even with every older snapshot deleted: not kept`);
  }
  const kept = listSnapshots(dir);
  const pruned: SnapshotMeta[] = [];
  let total = kept.reduce((sum, meta) => sum + meta.bytes, 0);
  while (kept.length > 0 && (kept.length + 1 > limits.keep || total + bytes > limits.maxBytes)) {
    const oldest = kept.shift()!;
    rmSync(path.join(dir, oldest.name), { recursive: true, force: true });
    total -= oldest.bytes;
    pruned.push(oldest);
  }
  return pruned;
}

/** Puts the finished scratch folder in place under `name`. */
export function publish(scratchDir: string, dir: string, name: string): void {
  renameSync(scratchDir, path.join(dir, name));
}

/** Sum of the sizes of the files under `dir` (a DATA_DIR copy), not following links. */
export function treeBytes(dir: string): number {
  let bytes = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const at = stack.pop()!;
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const full = path.join(at, entry.name);
      if (entry.isDirectory()) stack.push(full);
      else if (entry.isFile()) bytes += statSync(full).size;
    }
  }
  return bytes;
}

/** Empties a DATA_DIR before its snapshot's copy goes back in: files added since the snapshot are gone. */
export function emptyFolder(dir: string): void {
  for (const name of readdirSync(dir)) rmSync(path.join(dir, name), { recursive: true, force: true });
}
