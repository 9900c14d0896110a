/**
 * Inside a pool worker: runs components on wasmtime, matching the V8 path (../../worker.ts with jco) at the
 * guest's edge: the same host imports (log lines, time and randomness, the tenant's files, metrics), the same
 * values in and out, one idle instance kept per key and dropped after any failure. Each instance is its own
 * store, with the memory cap as the store's limit; a call runs under an epoch deadline, so a runaway traps at
 * its deadline and the worker lives on. Host functions are linked once per worker and find the instance they
 * serve through `current` (calls in a worker run one at a time).
 */
import { WASM_PAGE_BYTES } from '../../cap-memory.ts';
import { checkResponse } from '../../component/http.ts';
import { instantiateHostImports, type HostFunctions } from './host-imports.ts';
import type { ComponentArtifact, ComponentInstance, GuestHost, WasmHttpRequest, WasmHttpResponse } from '../../component/types.ts';
import { MAX_OUTPUT_BYTES, type GuestMetricUpdate, type WasmFailureKind, type WasmLogLine } from '../../types.ts';
import { loadWasmtime, type Wasmtime } from '../ffi.ts';
import { EPOCH_TICK_MS, claimTickerSlot, errorText, guestStarted, guestStopped, releaseTickerSlot, wasmtimeEngine, type WasmtimeShared } from '../host.ts';
import { COMPONENT_FUNC_SIZE, COMPONENT_INSTANCE_SIZE, VAL_SIZE, loadComponentApi, type ComponentApi, type Ptr } from './ffi.ts';
import { Arena } from './arena.ts';
import { lift } from './lift.ts';
import { MAX_WASMTIME_BODY_BYTES } from './values.ts';
import { EXPORTS, type ExportSignature } from './world.ts';
import { link, messageOf } from './linker.ts';
import { DeadlinePassed, GuestFailure, classify } from './failures.ts';

export interface WasmtimeComponentCall {
  shared: WasmtimeShared;
  /** The serialized component, deserialized once per worker. */
  file: string;
  hash: string;
  instanceKey: string;
  generation: number;
  fresh: boolean;
  dataDir: string | null;
  capPages: number;
  deadlineAt: number;
  deadlineMs: number;
  /** Ticker slot of the call (claimed by the pool): the ticker ticks while the guest runs. */
  slot: number;
  maxInstances: number;
  call: { op: 'http'; request: WasmHttpRequest } | { op: 'call'; exportName: string; args: unknown[] };
}

export type WasmtimeComponentResult = {
  logs: WasmLogLine[];
  metrics: GuestMetricUpdate[];
  live: number;
  evicted: string[];
  instantiated: boolean;
} & ({ ok: true; value: unknown } | { ok: false; kind: WasmFailureKind; message: string });

/** Components deserialized per worker (each maps its artifact), least recently used dropped first. */
const MAX_COMPONENTS = 64;

interface Loaded {
  component: Ptr;
  /** Export indices by export name (owned; deleted with the component). */
  exports: Map<string, Ptr>;
}

interface Kept {
  hash: string;
  generation: number;
  dataDir: string | null;
  capPages: number;
  store: Ptr;
  context: Ptr;
  instance: Buffer;
  funcs: Map<string, Buffer>;
  imports: Map<string, HostFunctions>;
}

interface State {
  w: Wasmtime;
  api: ComponentApi;
  engine: Ptr;
  linker: Ptr;
  components: Map<string, Loaded>;
  kept: Map<string, Kept>;
  arena: Arena;
  running: Int32Array;
}

let state: State | null = null;
/** The instance whose call is running: host functions serve it. */
let current: Kept | null = null;
let currentLogs: WasmLogLine[] = [];
let currentMetrics: GuestMetricUpdate[] = [];

function workerState(shared: WasmtimeShared): State {
  if (state) return state;
  const w = loadWasmtime(shared.library);
  const api = loadComponentApi(shared.library);
  const engine = BigInt(shared.componentEngine);
  const linker = api.wasmtime_component_linker_new(engine) as Ptr;
  try {
    link(api, linker, () => current?.imports);
  } catch (error) {
    api.wasmtime_component_linker_delete(linker);
    throw error;
  }
  state = { w, api, engine, linker, components: new Map(), kept: new Map(), arena: new Arena(), running: new Int32Array(shared.ticker) };
  return state;
}

function loadComponent(s: State, hash: string, file: string): Loaded {
  const known = s.components.get(hash);
  if (known) {
    s.components.delete(hash);
    s.components.set(hash, known);
    return known;
  }
  const out = Buffer.alloc(8);
  const error = s.api.wasmtime_component_deserialize_file(s.engine, file, out) as Ptr;
  if (error) throw new Error(`wasmtime could not load the component artifact ${file}: ${errorText(s.w, error)}`);
  const loaded: Loaded = { component: out.readBigUInt64LE(0), exports: new Map() };
  s.components.set(hash, loaded);
  while (s.components.size > MAX_COMPONENTS) {
    const [oldest, entry] = s.components.entries().next().value as [string, Loaded];
    s.components.delete(oldest);
    // Instances of it still kept go first: a store holds its component's code.
    for (const [key, kept] of s.kept) if (kept.hash === oldest) drop(s, key);
    for (const index of entry.exports.values()) s.api.wasmtime_component_export_index_delete(index);
    s.api.wasmtime_component_delete(entry.component);
  }
  return loaded;
}

function exportIndex(s: State, loaded: Loaded, name: string): Ptr {
  let index = loaded.exports.get(name);
  if (index === undefined) {
    index = s.api.wasmtime_component_get_export_index(loaded.component, 0n, name, Buffer.byteLength(name)) as Ptr;
    if (loaded.exports.size < 64) loaded.exports.set(name, index);
  }
  return index;
}

function drop(s: State, key: string): void {
  const kept = s.kept.get(key);
  if (!kept) return;
  s.kept.delete(key);
  s.w.wasmtime_store_delete(kept.store);
}

/** The pool's broadcast: instances of `key` older than `generation` are freed now. Returns whether one was. */
export function dropWasmtimeComponent(key: string, generation: number): boolean {
  const kept = state?.kept.get(key);
  if (!state || !kept || kept.generation >= generation) return false;
  drop(state, key);
  return true;
}

function setDeadline(s: State, kept: Kept, input: { deadlineAt: number }): boolean {
  const remaining = input.deadlineAt - (performance.timeOrigin + performance.now());
  if (remaining <= 0) return false;
  s.w.wasmtime_context_set_epoch_deadline(kept.context, BigInt(Math.ceil(remaining / EPOCH_TICK_MS) + 1));
  return true;
}

interface InstanceInput {
  hash: string;
  generation: number;
  dataDir: string | null;
  capPages: number;
  deadlineAt: number;
}

function instantiate(s: State, loaded: Loaded, input: InstanceInput, guest: GuestHost): Kept {
  const store = s.w.wasmtime_store_new(s.engine, 0n, 0n) as Ptr;
  const context = s.w.wasmtime_store_context(store) as Ptr;
  // Every memory of the component capped (its core modules each count): instances, tables and memories bounded.
  s.w.wasmtime_store_limiter(store, input.capPages * WASM_PAGE_BYTES, 1_000_000, 1000, 1000, 100);
  const kept: Kept = {
    hash: input.hash,
    generation: input.generation,
    dataDir: input.dataDir,
    capPages: input.capPages,
    store,
    context,
    instance: Buffer.alloc(COMPONENT_INSTANCE_SIZE),
    funcs: new Map(),
    imports: instantiateHostImports(guest),
  };
  if (!setDeadline(s, kept, input)) {
    s.w.wasmtime_store_delete(store);
    throw new DeadlinePassed();
  }
  current = kept;
  const error = s.api.wasmtime_component_linker_instantiate(s.linker, context, loaded.component, kept.instance) as Ptr;
  current = null;
  if (error) {
    s.w.wasmtime_store_delete(store);
    throw new GuestFailure(messageOf(s.api, error));
  }
  return kept;
}


function func(s: State, loaded: Loaded, kept: Kept, name: string): Buffer {
  let fn = kept.funcs.get(name);
  if (fn) return fn;
  const index = exportIndex(s, loaded, name);
  fn = Buffer.alloc(COMPONENT_FUNC_SIZE);
  if (!index || !s.api.wasmtime_component_instance_get_func(kept.instance, kept.context, index, fn)) {
    throw new Error(`the component has no export ${JSON.stringify(name)}`);
  }
  kept.funcs.set(name, fn);
  return fn;
}

/** Runs one call; never throws for anything the guest does. */
export function runWasmtimeComponent(input: WasmtimeComponentCall): WasmtimeComponentResult {
  currentLogs = [];
  currentMetrics = [];
  const logs = currentLogs;
  const metrics = currentMetrics;
  const base = { logs, metrics, evicted: [] as string[] };
  let s: State;
  let loaded: Loaded;
  try {
    s = workerState(input.shared);
    loaded = loadComponent(s, input.hash, input.file);
  } catch (error) {
    return { ...base, ok: false, kind: 'error', message: (error as Error).message, live: 0, instantiated: false };
  }
  const exportName = input.call.op === 'http' ? 'handle' : input.call.exportName;
  const signature = EXPORTS.get(exportName);
  if (!signature) {
    return { ...base, ok: false, kind: 'error', message: `the wasmtime engine calls only the exports of Tenement's worlds, not ${JSON.stringify(exportName)}`, live: 0, instantiated: false };
  }
  if (input.call.op === 'http' && input.call.request.body.length > MAX_WASMTIME_BODY_BYTES) {
    const message = `the request body of ${input.call.request.body.length} bytes is over the wasmtime engine's limit of ${MAX_WASMTIME_BODY_BYTES} (docs/wasm.md, "Engines")`;
    return { ...base, ok: false, kind: 'error', message, live: 0, instantiated: false };
  }
  let kept = input.fresh ? undefined : s.kept.get(input.instanceKey);
  if (kept && (kept.hash !== input.hash || kept.generation !== input.generation || kept.dataDir !== input.dataDir || kept.capPages !== input.capPages)) {
    drop(s, input.instanceKey);
    kept = undefined;
  }
  let instantiated = false;
  const timeout = (): WasmtimeComponentResult => ({
    ...base,
    ok: false,
    kind: 'timeout',
    message: `deadline of ${input.deadlineMs}ms passed: the guest was interrupted (wasmtime epoch), its worker lives on`,
    live: 0,
    instantiated,
  });
  guestStarted(s.running, input.slot);
  try {
    if (!kept) {
      s.kept.delete(input.instanceKey);
      kept = instantiate(s, loaded, input, {
        dataDir: input.dataDir,
        log: (stream, line) => currentLogs.push({ stream, line }),
        metrics: () => currentMetrics,
      });
      instantiated = true;
    } else if (!setDeadline(s, kept, input)) {
      return timeout();
    }
    let value = invoke(s, loaded, kept, signature, input.call.op === 'http' ? [input.call.request] : input.call.args);
    const evicted = input.fresh ? [] : keep(s, input.instanceKey, kept, input.maxInstances);
    if (input.fresh) s.w.wasmtime_store_delete(kept.store);
    const live = input.fresh ? 0 : 1;
    if (input.call.op === 'http') {
      try {
        value = checkResponse(value);
      } catch (error) {
        // As on V8: the instance that answered garbage is not reused.
        if (!input.fresh) drop(s, input.instanceKey);
        return { ...base, evicted, ok: false, kind: 'error', message: (error as Error).message, live: 0, instantiated };
      }
      const body = (value as WasmHttpResponse).body;
      if (body.length > MAX_OUTPUT_BYTES) {
        return { ...base, evicted, ok: false, kind: 'output-too-large', message: `the handler returned a body of ${body.length} bytes, over the limit of ${MAX_OUTPUT_BYTES}`, live, instantiated };
      }
    }
    return { ...base, evicted, ok: true, value, live, instantiated };
  } catch (error) {
    // A trapped instance cannot be entered again, and a failed one may hold half-written state: never reused.
    if (kept && s.kept.get(input.instanceKey) === kept) s.kept.delete(input.instanceKey);
    if (kept) s.w.wasmtime_store_delete(kept.store);
    if (error instanceof DeadlinePassed) return timeout();
    const failure = classify((error as Error).message, input);
    if (failure.kind === 'timeout') return timeout();
    return { ...base, ok: false, ...failure, live: 0, instantiated };
  } finally {
    current = null;
    guestStopped(s.running, input.slot);
  }
}

/** Calls an export of a live instance; throws GuestFailure with wasmtime's message on a trap or an error. */
function invoke(s: State, loaded: Loaded, kept: Kept, signature: ExportSignature, args: unknown[]): unknown {
  const fn = func(s, loaded, kept, signature.name);
  const argv = s.arena.lower(args, signature.params);
  const results = signature.result ? Buffer.alloc(VAL_SIZE) : null;
  current = kept;
  let error: Ptr;
  try {
    error = s.api.wasmtime_component_func_call(fn, kept.context, argv, args.length, results, results ? 1 : 0) as Ptr;
  } finally {
    current = null;
    s.arena.settle();
  }
  // On an error nothing was written into the results.
  if (error) throw new GuestFailure(messageOf(s.api, error));
  try {
    const post = s.api.wasmtime_component_func_post_return(fn, kept.context) as Ptr;
    if (post) throw new GuestFailure(messageOf(s.api, post));
    return results ? lift(results, 0, signature.result) : undefined;
  } finally {
    if (results) s.api.wasmtime_component_val_delete(results);
  }
}

function keep(s: State, key: string, kept: Kept, max: number): string[] {
  s.kept.delete(key);
  s.kept.set(key, kept);
  const evicted: string[] = [];
  while (s.kept.size > max) {
    const oldest = s.kept.keys().next().value as string;
    drop(s, oldest);
    evicted.push(oldest);
  }
  return evicted;
}

/**
 * An instance on the calling thread, with the V8 path's `ComponentInstance` contract (tests and tools run the
 * same checks on both engines through it). Each call runs under `deadlineMs` by epoch; after any throw the
 * instance is poisoned and its store freed. `close()` frees it otherwise.
 */
export function instantiateWasmtimeComponent(
  artifact: ComponentArtifact,
  host: GuestHost,
  options: { deadlineMs?: number } = {},
): ComponentInstance & { close(): void } {
  const engine = wasmtimeEngine();
  if (!engine.shared) throw new Error(`wasmtime is not usable here: ${engine.reason}`);
  if (!artifact.wasmtime) throw new Error('the artifact was not prepared for the wasmtime engine');
  const s = workerState(engine.shared);
  const loaded = loadComponent(s, `${artifact.hash}-p${artifact.memoryPages}`, artifact.wasmtime.file);
  const deadlineMs = options.deadlineMs ?? 60_000;
  const deadlineAt = () => performance.timeOrigin + performance.now() + deadlineMs;
  let kept: Kept | null = null;
  let poisoned = false;
  const running = <T>(work: () => T): T => {
    const slot = claimTickerSlot();
    if (slot === null) throw new Error('no free ticker slot');
    guestStarted(s.running, slot);
    try {
      return work();
    } finally {
      releaseTickerSlot(s.running, slot);
    }
  };
  kept = running(() => instantiate(s, loaded, { hash: artifact.hash, generation: 0, dataDir: host.dataDir, capPages: artifact.memoryPages, deadlineAt: deadlineAt() }, host));
  const free = () => {
    if (kept) s.w.wasmtime_store_delete(kept.store);
    kept = null;
  };
  return {
    get poisoned() {
      return poisoned;
    },
    call(exportName, args) {
      if (poisoned || !kept) throw new Error('component instance is poisoned by an earlier trap: instantiate a fresh one');
      const signature = EXPORTS.get(exportName);
      if (!signature) throw new Error(`the component has no export ${JSON.stringify(exportName)} the wasmtime engine knows`);
      const live = kept;
      try {
        return running(() => {
          if (!setDeadline(s, live, { deadlineAt: deadlineAt() })) throw new DeadlinePassed('deadline passed');
          return invoke(s, loaded, live, signature, args);
        });
      } catch (error) {
        poisoned = true;
        free();
        if (error instanceof GuestFailure) {
          const failure = classify(error.message, { capPages: artifact.memoryPages, deadlineMs });
          throw new Error(failure.kind === 'timeout' ? `deadline of ${deadlineMs}ms passed (wasm trap: interrupt)` : failure.message);
        }
        throw error;
      }
    },
    close: free,
  };
}
