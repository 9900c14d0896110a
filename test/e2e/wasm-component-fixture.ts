// What the tests of TypeScript handlers as WebAssembly components share: the example components and the probe
// (built with `jco componentize`, cached by source hash in ~/.cache/tenement/components), their preparation for
// each engine, the engines to run on and why one skips, and a guest host that keeps the lines it is given.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildComponent, prepareComponent, type ComponentArtifact, type GuestHost, type WasmHttpRequest } from '../../core/wasm/component/index.ts';
import type { EngineName } from '../../core/wasm/engine.ts';
import { wasmtimeStatus } from '../../core/wasm/wasmtime/library.ts';
import { prepareWasmtimeComponent } from '../../core/wasm/wasmtime/component/compile.ts';
import { FIXTURES, ROOT } from '../helpers.ts';

/** This test file's scratch folder (the probe, prepared artifacts, tenants' data); its tests remove it at the end. */
export const work = mkdtempSync(path.join(os.tmpdir(), 'tenement-wasm-component-'));
// The examples are built where their configs expect them (what `npm run build` there does; gitignored).
export const HELLO_DIR = path.join(ROOT, 'examples', 'wasm-hello');
export const KV_DIR = path.join(ROOT, 'examples', 'wasm-kv');
export const HELLO = path.join(HELLO_DIR, 'hello.wasm');
export const KV = path.join(KV_DIR, 'counter.wasm');
export const PROBE = path.join(work, 'probe.wasm');

/** Why every test of these files skips (jco missing), or false. */
export function jcoMissing(): string | false {
  try {
    import.meta.resolve('@bytecodealliance/jco');
    return false;
  } catch {
    return 'needs @bytecodealliance/jco (npm install: it is a devDependency)';
  }
}
const wasmtime = wasmtimeStatus();
/** Why a wasmtime variant skips (CI fetches the library, so none skips there). */
export const wasmtimeSkip = wasmtime.usable ? false : `needs wasmtime ${wasmtime.version} (npm run fetch:wasmtime): ${wasmtime.reason}`;
export const ENGINES: EngineName[] = ['v8', 'wasmtime'];
export const engineSkip = (engine: EngineName): string | false => (engine === 'wasmtime' ? wasmtimeSkip : false);

export const encoder = new TextEncoder();
export const decoder = new TextDecoder();

/** A request to call a handler with, from `target`'s path and query. */
export function req(method: string, target: string, body = ''): WasmHttpRequest {
  const [pathPart, query = ''] = target.split('?') as [string, string?];
  return { method, path: pathPart, query, headers: [['user-agent', 'node-test']], body: encoder.encode(body) };
}

export interface Captured extends GuestHost {
  lines: string[];
}
/** A guest host on `dataDir` (null: none) that keeps every logged line as `stream: line`. */
export function host(dataDir: string | null): Captured {
  const lines: string[] = [];
  return { dataDir, lines, log: (stream, line) => lines.push(`${stream}: ${line}`) };
}

/** Builds hello and kv into their example folders and the probe into `work`. */
export async function buildComponents(): Promise<void> {
  // Serialised by buildComponent itself; cached by the hash of the sources.
  await buildComponent({ source: path.join(HELLO_DIR, 'hello.ts'), out: HELLO });
  await buildComponent({ source: path.join(KV_DIR, 'counter.ts'), out: KV });
  await buildComponent({ source: path.join(FIXTURES, 'wasm-component', 'probe.ts'), out: PROBE });
}

export interface Components {
  hello: ComponentArtifact;
  kv: ComponentArtifact;
  probe: ComponentArtifact;
}

/** The three components (built already) prepared in `cacheDir` for V8, and for wasmtime unless it skips. */
export async function prepareComponents(cacheDir: string): Promise<Map<EngineName, Components>> {
  const onWasmtime = (file: string) => {
    const bytes = readFileSync(file);
    return prepareWasmtimeComponent(bytes, createHash('sha256').update(bytes).digest('hex'), cacheDir, 1024);
  };
  const prepared = new Map<EngineName, Components>();
  const hello = await prepareComponent(HELLO, { cacheDir, memoryPages: 1024 });
  const kv = await prepareComponent(KV, { cacheDir, memoryPages: 1024 });
  const probe = await prepareComponent(PROBE, { cacheDir, memoryPages: 1024 });
  prepared.set('v8', { hello, kv, probe });
  if (!wasmtimeSkip) prepared.set('wasmtime', { hello: await onWasmtime(HELLO), kv: await onWasmtime(KV), probe: await onWasmtime(PROBE) });
  return prepared;
}
