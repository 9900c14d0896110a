/**
 * The per-user context file, `$XDG_CONFIG_HOME/tenement/contexts.json` (default `~/.config/tenement/`): where each
 * server this user started can be reached and where its admin token lives, like kubectl's contexts. `ten serve`
 * records itself there and makes itself current; `ten` run in a folder without a config reaches the current one.
 *
 * The file says where to send the admin token, so one another user could write would let them collect it: a file
 * or folder writable by group or others, or owned by another user, is refused, not read. It holds no secret
 * itself (token files are named, not copied). Only node:fs, node:os and node:path: every `ten` command loads it.
 */
import { chmodSync, closeSync, existsSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ErrorCodes } from '../core/errors.ts';
import { isoTime } from '../core/log-time.ts';
import { CliError } from './client.ts';

export interface ServerContext {
  /** The management API socket, when the server has one. */
  socket: string | null;
  /** The TCP URL, when the API is on TCP. */
  server: string | null;
  /** Where the admin token lives (`{dataDir}/admin.token`). */
  tokenFile: string;
  config: string | null;
  dataDir: string;
  /** ISO time `ten serve` last recorded it. */
  updatedAt: string;
}

export interface ContextFile {
  current: string | null;
  contexts: Map<string, ServerContext>;
}

/** A name is a label-ish word: it is printed, typed on the command line and used as a key. */
const NAME = /^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$/;
/** Bounds what a (hostile or corrupted) file can make `ten` hold and print. */
const MAX_CONTEXTS = 256;
const MAX_FILE_BYTES = 1 << 20;

export function contextDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : path.join(env.HOME || os.homedir(), '.config');
  return path.join(base, 'tenement');
}

export function contextFilePath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(contextDir(env), 'contexts.json');
}

function uid(): number | null {
  return process.getuid?.() ?? null;
}

/** Refuses a file or folder another user could have written (see the header). */
function checkOwnership(file: string, what: string): void {
  const stat = lstatSync(file);
  if (stat.isSymbolicLink()) throw new CliError(`${what} ${file} is a symbolic link; refusing to use it (replace it with a file)`, ErrorCodes.CONTEXT_FILE);
  const me = uid();
  if (me !== null && stat.uid !== me && stat.uid !== 0) {
    throw new CliError(`${what} ${file} belongs to uid ${stat.uid}, not to you (uid ${me}); refusing to use it`, ErrorCodes.CONTEXT_FILE);
  }
  if ((stat.mode & 0o022) !== 0) {
    const mode = (stat.mode & 0o777).toString(8).padStart(4, '0');
    throw new CliError(
      `${what} ${file} is writable by other users (mode ${mode}), who could point ten at their own server to collect your token; refusing to use it (chmod go-w ${file})`,
      ErrorCodes.CONTEXT_FILE,
    );
  }
}

const isString = (value: unknown): value is string => typeof value === 'string' && value.length > 0 && value.length <= 4096;
const optionalString = (value: unknown): value is string | null | undefined => value === null || value === undefined || isString(value);

function parseEntry(value: unknown): ServerContext | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const v = value as Record<string, unknown>;
  if (!optionalString(v.socket) || !optionalString(v.server) || !isString(v.tokenFile) || !isString(v.dataDir) || !optionalString(v.config)) return null;
  if (!v.socket && !v.server) return null;
  if (v.socket && !path.isAbsolute(v.socket)) return null;
  if (!path.isAbsolute(v.tokenFile) || !path.isAbsolute(v.dataDir)) return null;
  return {
    socket: v.socket ?? null,
    server: v.server ?? null,
    tokenFile: v.tokenFile,
    config: v.config ?? null,
    dataDir: v.dataDir,
    updatedAt: typeof v.updatedAt === 'string' ? v.updatedAt.slice(0, 40) : '',
  };
}

/**
 * The file's contexts; an absent file is an empty one. Garbage (not JSON, wrong shape) is a CliError naming the
 * file; single malformed entries (bad names, missing fields) are dropped, so one bad line does not lock `ten` out.
 */
export function readContexts(env: NodeJS.ProcessEnv = process.env): ContextFile {
  const file = contextFilePath(env);
  let text: string;
  try {
    checkOwnership(path.dirname(file), 'the context folder');
    checkOwnership(file, 'the context file');
    const size = lstatSync(file).size;
    if (size > MAX_FILE_BYTES) throw new CliError(`the context file ${file} is ${size} bytes, more than a context file can be; delete it`, ErrorCodes.CONTEXT_FILE);
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { current: null, contexts: new Map() };
    throw error;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new CliError(`the context file ${file} is not valid JSON (${(error as Error).message}); fix it or delete it (ten serve writes a new one)`, ErrorCodes.CONTEXT_FILE);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CliError(`the context file ${file} is not a JSON object; fix it or delete it (ten serve writes a new one)`, ErrorCodes.CONTEXT_FILE);
  }
  const record = raw as { current?: unknown; contexts?: unknown };
  const contexts = new Map<string, ServerContext>();
  // Entries read as own [key, value] pairs into a Map: a key `__proto__` or `constructor` is a name like any other,
  // and fails the name rule anyway.
  const entries = typeof record.contexts === 'object' && record.contexts !== null && !Array.isArray(record.contexts) ? Object.entries(record.contexts) : [];
  for (const [name, value] of entries.slice(0, MAX_CONTEXTS)) {
    const entry = NAME.test(name) ? parseEntry(value) : null;
    if (entry) contexts.set(name, entry);
  }
  const current = typeof record.current === 'string' && contexts.has(record.current) ? record.current : null;
  return { current, contexts };
}

/** Written to a temporary file in the same folder, fsynced, then renamed over: a reader sees the old or the new file. */
export function writeContexts(file: ContextFile, env: NodeJS.ProcessEnv = process.env): void {
  const target = contextFilePath(env);
  const dir = path.dirname(target);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const contexts: Record<string, ServerContext> = Object.create(null) as Record<string, ServerContext>;
  for (const [name, entry] of [...file.contexts].slice(-MAX_CONTEXTS)) contexts[name] = entry;
  const text = `${JSON.stringify({ current: file.current, contexts }, null, 2)}\n`;
  const temp = `${target}.${process.pid}.${Date.now()}.tmp`;
  const fd = openSync(temp, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    chmodSync(temp, 0o600);
    renameSync(temp, target);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
}

/** A context name from the config's folder (`/srv/notes/tenement.config.ts` → `notes`), else the data dir's. */
export function contextName(config: string | null, dataDir: string, taken: ReadonlyMap<string, ServerContext>): string {
  const base =
    (config ? path.basename(path.dirname(config)) : path.basename(dataDir))
      .toLowerCase()
      .replace(/[^a-z0-9._-]+/g, '-')
      .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '')
      .slice(0, 48) || 'tenement';
  // Two servers from folders of the same name get two contexts: the second is suffixed by a hash of its data dir.
  const existing = taken.get(base);
  if (!existing || existing.dataDir === dataDir) return base;
  let hash = 0;
  for (const char of dataDir) hash = (Math.imul(hash, 31) + char.charCodeAt(0)) >>> 0;
  return `${base}-${hash.toString(36)}`;
}

/**
 * Records a server and makes it current (`ten serve` calls this once it listens). A context already recorded for
 * the same data dir is replaced, whatever its name.
 */
export function recordContext(entry: Omit<ServerContext, 'updatedAt'>, env: NodeJS.ProcessEnv = process.env): string {
  let file: ContextFile;
  try {
    file = readContexts(env);
  } catch (error) {
    // An unusable file is not ours to repair silently when it is unsafe or garbage: say so and leave it.
    if (error instanceof CliError) throw error;
    throw new CliError(`cannot read the context file ${contextFilePath(env)}: ${(error as Error).message}`, ErrorCodes.CONTEXT_FILE);
  }
  // The same server's earlier record, and servers whose data dir is gone (a deleted project, a test's temp dir).
  for (const [name, known] of file.contexts) if (known.dataDir === entry.dataDir || !existsSync(known.dataDir)) file.contexts.delete(name);
  const name = contextName(entry.config, entry.dataDir, file.contexts);
  // isoTime, not Date#toISOString: that pages in ICU's time zone data (~1 MB resident in ten serve, core/log-time.ts).
  file.contexts.set(name, { ...entry, updatedAt: isoTime() });
  file.current = name;
  writeContexts(file, env);
  return name;
}
