/**
 * WASM components (Tenement's HTTP handler world and other WIT worlds) on V8 through jco:
 * build (TS/JS -> component, jco componentize with QuickJS), prepare (main thread: transpile + compile once per
 * hash), instantiate (inside a pool worker) and the HTTP handler call. See docs/wasm.md.
 */
export type {
  BuildComponentOptions,
  BuildComponentResult,
  ComponentArtifact,
  ComponentInstance,
  GuestHost,
  GuestStream,
  PrepareComponentOptions,
  WasmHttpRequest,
  WasmHttpResponse,
} from './types.ts';
export { buildComponent } from './build.ts';
export { prepareComponent } from './prepare.ts';
export { instantiateComponent } from './instantiate.ts';
export { handleHttp, HANDLER_WORLD } from './http.ts';
