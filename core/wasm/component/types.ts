/**
 * The contract between component builds, the main thread that prepares them and the pool workers that run them.
 * Everything that crosses to a worker (ComponentArtifact) must survive structured clone: plain data and
 * compiled `WebAssembly.Module`s only, no functions.
 */

/** A component made ready to run: transpiled once per content hash, core modules compiled once per process. */
export interface ComponentArtifact {
  /** sha256 (hex) of the component's bytes; the cache key on disk and in the pool's memory. */
  hash: string;
  /** file: URL of the transpiled JS glue (`instantiation: async` mode: exports `instantiate`, imports nothing). */
  jsPath: string;
  /** Core modules by the file name the glue asks for, compiled after the memory cap was written into them. */
  modules: Record<string, WebAssembly.Module>;
  /** The WIT world the component targets, as a `package/world` name when known (e.g. 'tenement:http/handler'). */
  world: string;
  /** Names of the component's root exports (functions and interfaces), e.g. ['handle']. */
  exports: string[];
  /** Interfaces the component imports, fully qualified (e.g. 'tenement:http/tenant-data@0.1.0'). */
  imports: string[];
  /** The memory cap (64 KiB pages) written into every core module's memories. */
  memoryPages: number;
  /**
   * Set: the component runs on the wasmtime engine from this serialized artifact (core/wasm/wasmtime/component/);
   * `jsPath` and `modules` are then empty, and the cap is the store's limit instead.
   */
  wasmtime?: { file: string };
}

export type GuestStream = 'stdout' | 'stderr';

/** What the worker gives one component instance: its tenant's data dir and where its output goes. */
export interface GuestHost {
  /** The tenant's DATA_DIR; null means the guest gets no storage (tenant-data calls fail with an error). */
  dataDir: string | null;
  /** One complete line of guest output (console.log -> stdout, console.error/warn -> stderr). */
  log(stream: GuestStream, line: string): void;
  /** Where the `tenement:http/metrics` import records the running call's updates (absent: calls are ignored). */
  metrics?: () => import('../types.ts').GuestMetricUpdate[];
  /**
   * Extra host imports for other worlds (e.g. kernel-hook plugins), keyed by fully qualified interface name
   * ('tenement:plugin/host@0.1.0'). They are merged over the built-in log and tenant-data imports.
   */
  imports?: Record<string, Record<string, (...args: never[]) => unknown>>;
}

/** A live component instance. After any throw (a trap), jco poisons it: drop it and instantiate a fresh one. */
export interface ComponentInstance {
  /** Calls a root export synchronously; throws on a trap or on a guest error. */
  call(exportName: string, args: unknown[]): unknown;
  /** True once a call has thrown: the instance must not be reused. */
  readonly poisoned: boolean;
  /** V8: `handle` takes the lean path past jco's task machinery (lean-glue.ts). */
  readonly lean?: boolean;
}

export interface WasmHttpRequest {
  method: string;
  /** Path without the query string, starting with '/'. */
  path: string;
  /** The query string without '?', '' when none. */
  query: string;
  headers: [string, string][];
  body: Uint8Array;
}

export interface WasmHttpResponse {
  status: number;
  headers: [string, string][];
  body: Uint8Array;
}

export interface BuildComponentOptions {
  /** The handler's source, a .ts or .js ES module (TypeScript is bundled by jco). */
  source: string;
  /** Where to write the component (.wasm). */
  out: string;
  /** WIT file or directory; default: Tenement's HTTP handler world (sdk/wit/handler.wit). */
  wit?: string;
  /** World in `wit` to target; default 'handler'. */
  world?: string;
}

export interface BuildComponentResult {
  out: string;
  bytes: number;
  ms: number;
}

export interface PrepareComponentOptions {
  /** Transpiled artifacts go to `${cacheDir}/${hash}/` and are reused when present. */
  cacheDir: string;
  /** Memory cap for every core module, in 64 KiB pages. */
  memoryPages: number;
}
