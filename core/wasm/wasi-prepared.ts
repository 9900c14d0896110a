/**
 * V8's instances made ahead, as wasmtime/prepared.ts does for wasmtime: once a worker has posted a WASI call's
 * answer, it instantiates the module again with fresh imports (wasi-run.ts prepareWasiCommand) for the module's
 * next request, which then only makes its own WASI (argv, env, its DATA_DIR) and runs `_start`. Every request
 * still runs in an instance no request ran in. Only for modules without a start function (the pool says so:
 * `ahead`); at most one per module and MAX_PREPARED per worker; dropped with the module's code (evicted) and when
 * the instance key that last used it is dropped (hibernation, stop, a new deploy).
 */
import { prepareWasiCommand, type PreparedWasi } from './wasi-run.ts';

const MAX_PREPARED = 8;

const prepared = new Map<string, { ready: PreparedWasi; owner: string }>();
let next: { hash: string; module: WebAssembly.Module; owner: string; devNull: number } | null = null;

/** The instance made ahead for this module (by hash), taken: it serves one request. */
export function takeV8Prepared(hash: string): PreparedWasi | null {
  const entry = prepared.get(hash);
  if (!entry) return null;
  prepared.delete(hash);
  return entry.ready;
}

/** After a call of an `ahead` module: its next instance is made once the answer is posted. */
export function planV8Prepared(hash: string, module: WebAssembly.Module, owner: string, devNull: number): void {
  next = { hash, module, owner, devNull };
}

export function afterAnswerV8(): void {
  const job = next;
  next = null;
  if (!job) return;
  const known = prepared.get(job.hash);
  prepared.delete(job.hash);
  prepared.set(job.hash, known ? { ...known, owner: job.owner } : { ready: prepareWasiCommand(job.module, job.devNull), owner: job.owner });
  while (prepared.size > MAX_PREPARED) prepared.delete(prepared.keys().next().value as string);
}

/** Drops what was made ahead after a call of this instance key. */
export function dropV8PreparedFor(owner: string): void {
  for (const [hash, entry] of prepared) if (entry.owner === owner) prepared.delete(hash);
  if (next?.owner === owner) next = null;
}

/** Drops what was made ahead for modules whose code the worker no longer keeps. */
export function dropV8PreparedOf(hashes: readonly string[]): void {
  for (const hash of hashes) prepared.delete(hash);
  if (next && hashes.includes(next.hash)) next = null;
}
