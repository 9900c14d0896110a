/**
 * Main thread: a component file -> an artifact the wasmtime engine's workers deserialize. Compiled once
 * (`wasmtime_component_new`, Cranelift ahead of time) and serialized to the artifact cache next to modules'
 * (`<dataDir>/wasm-cache/wasmtime-49.0.0/<sha256>-component.cwasm`), so a restarted server only maps it.
 * The component's import and export names are read from its type, for the same checks V8's artifacts get.
 * No memory cap is written into the code: on this engine it is the store's limit, set per instance.
 */
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ErrorCodes, TenementError } from '../../../errors.ts';
import { HANDLER_WORLD } from '../../component/http.ts';
import type { ComponentArtifact } from '../../component/types.ts';
import { BYTE_VEC_SIZE, type Wasmtime } from '../ffi.ts';
import { artifactPath, errorText, takeByteVec, wasmtimeEngine } from '../host.ts';
import { loadComponentApi, type ComponentApi, type Ptr } from './ffi.ts';
import { readNative } from './native.ts';

/** The artifact file of a component, by the sha256 of its bytes (the cap is not part of the code here). */
export const componentArtifactPath = (cacheDir: string, sha256: string): string => artifactPath(cacheDir, `${sha256}-component`);

/**
 * Compiles (unless the artifact is on disk already) and describes a component for the wasmtime engine.
 * Throws TNM_ERR_WASMTIME_UNAVAILABLE without the library, TNM_ERR_WASM_COMPILE_FAILED with wasmtime's message.
 */
export async function prepareWasmtimeComponent(bytes: Uint8Array, sha256: string, cacheDir: string, memoryPages: number): Promise<ComponentArtifact> {
  const engine = wasmtimeEngine();
  if (!engine.shared) throw new TenementError(ErrorCodes.WASMTIME_UNAVAILABLE, engine.reason);
  const w = engine.lib;
  const api = loadComponentApi(engine.shared.library);
  const enginePtr = BigInt(engine.shared.componentEngine);
  const file = componentArtifactPath(cacheDir, sha256);
  const out = Buffer.alloc(8);
  let component: Ptr;
  if (existsSync(file)) {
    const error = api.wasmtime_component_deserialize_file(enginePtr, file, out) as Ptr;
    // An unreadable artifact (another wasmtime build, a torn file) is compiled again below.
    component = error ? (w.wasmtime_error_delete(error), 0n) : out.readBigUInt64LE(0);
  } else {
    component = 0n;
  }
  if (!component) component = await compile(w, api, enginePtr, bytes, file);
  try {
    const names = describe(api, enginePtr, component);
    return {
      hash: sha256,
      jsPath: '',
      modules: {},
      world: names.exports.includes('handle') ? HANDLER_WORLD : (names.imports.find((name) => name.startsWith('tenement:plugin/'))?.replace(/\/.*$/, '') ?? 'unknown'),
      exports: names.exports,
      imports: names.imports,
      memoryPages,
      wasmtime: { file },
    };
  } finally {
    api.wasmtime_component_delete(component);
  }
}

/**
 * Cranelift takes seconds for a QuickJS component (~7 s for examples/wasm-hello here): it runs on one of koffi's
 * threads (the engine is thread-safe), so the server's event loop keeps serving meanwhile.
 */
async function compile(w: Wasmtime, api: ComponentApi, engine: Ptr, bytes: Uint8Array, file: string): Promise<Ptr> {
  const out = Buffer.alloc(8);
  const input = Buffer.from(bytes); // held by this frame until the call returns
  const error = await new Promise<Ptr>((resolve, reject) => {
    (api.wasmtime_component_new as unknown as { async: (...args: unknown[]) => void }).async(engine, input, input.length, out, (failure: Error | null, result: Ptr) =>
      failure ? reject(failure) : resolve(result),
    );
  });
  if (error) throw new TenementError(ErrorCodes.WASM_COMPILE_FAILED, `wasmtime could not compile the component: ${errorText(w, error)}`);
  const component = out.readBigUInt64LE(0);
  try {
    const vec = Buffer.alloc(BYTE_VEC_SIZE);
    const failed = api.wasmtime_component_serialize(component, vec) as Ptr;
    if (failed) throw new TenementError(ErrorCodes.WASM_COMPILE_FAILED, `wasmtime could not serialize the component: ${errorText(w, failed)}`);
    const artifact = takeByteVec(w, vec);
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    // Written aside and renamed: a worker deserializing it never maps half a file.
    const temp = `${file}.${process.pid}.${Date.now()}.tmp`;
    writeFileSync(temp, artifact, { mode: 0o600 });
    renameSync(temp, file);
    return component;
  } catch (error) {
    api.wasmtime_component_delete(component);
    throw error;
  }
}

/** Root import and export names from the component's type (imports as fully qualified interface names). */
function describe(api: ComponentApi, engine: Ptr, component: Ptr): { imports: string[]; exports: string[] } {
  const type = api.wasmtime_component_type(component) as Ptr;
  try {
    const read = (count: number, nth: typeof api.wasmtime_component_type_import_nth): string[] => {
      const names: string[] = [];
      const name = Buffer.alloc(8);
      const length = Buffer.alloc(8);
      const item = Buffer.alloc(8);
      for (let i = 0; i < Math.min(count, 1000); i++) {
        if (!nth(type, engine, i, name, length, item)) continue;
        const size = Number(length.readBigUInt64LE(0));
        names.push(readNative(name.readBigUInt64LE(0), size).toString('utf8'));
        api.wasmtime_component_extern_delete(item.readBigUInt64LE(0));
      }
      return names;
    };
    return {
      imports: read(Number(api.wasmtime_component_type_import_count(type, engine)), api.wasmtime_component_type_import_nth),
      exports: read(Number(api.wasmtime_component_type_export_count(type, engine)), api.wasmtime_component_type_export_nth).filter((name) => name !== 'init'),
    };
  } finally {
    api.wasmtime_component_type_delete(type);
  }
}
