/**
 * Coded errors, in the spirit of Fastify's FST_ERR_* and its createError: the code is stable and greppable, the
 * message is for humans, each code's HTTP status is defined once with it (ERRORS below), and `plugin`/`hook`
 * say where a failure came from so a stack trace is rarely needed.
 */

export interface ErrorSpec {
  /** What a client is answered when this error reaches it. */
  readonly status: number;
  /** A client may try the same request again later (a Retry-After usually says when). */
  readonly retryable?: boolean;
}

/** Every code, without its `TNM_ERR_` prefix, with the one status it answers. */
const ERRORS = {
  CONFIG_NOT_FOUND: { status: 500 },
  CONFIG_INVALID: { status: 500 },
  CONFIG_LOAD: { status: 500 },
  PLUGIN_MANIFEST: { status: 500 },
  PLUGIN_DUPLICATE: { status: 500 },
  PLUGIN_MISSING_DEPENDENCY: { status: 500 },
  PLUGIN_KERNEL_VERSION: { status: 500 },
  PLUGIN_SETUP: { status: 500 },
  /** A sandboxed (wasm) auth plugin denied the request; its answer may name a more precise 4xx. */
  PLUGIN_DENIED: { status: 403 },
  /** A fail-closed sandboxed plugin could not decide (trapped, timed out, answered nonsense). */
  PLUGIN_UNAVAILABLE: { status: 503, retryable: true },
  HOOK_FAILED: { status: 500 },
  TIER_UNAVAILABLE: { status: 503 },
  SPAWN_FAILED: { status: 503, retryable: true },
  STARTUP_TIMEOUT: { status: 503, retryable: true },
  NO_PORT: { status: 503, retryable: true },
  NO_TENANT_UID: { status: 503, retryable: true },
  /** An internal state machine refused a step (a kernel started twice, a transition the graph lacks). */
  INVALID_STATE: { status: 500 },
  INSTANCE_FAILED: { status: 503, retryable: true },
  INSTANCE_STOPPED: { status: 503, retryable: true },
  /** The server is shutting down: ask again (elsewhere, or once it is back). */
  SHUTTING_DOWN: { status: 503, retryable: true },
  UNKNOWN_SERVICE: { status: 404 },
  UNKNOWN_INSTANCE: { status: 404 },
  UNKNOWN_HOST: { status: 404 },
  /** A Host header that is missing, empty or not `{id}.{service}.{domain}` / `{service}.{domain}`. */
  BAD_HOST: { status: 400 },
  /** A service or instance name that is not a DNS label. */
  BAD_NAME: { status: 400 },
  WAKE_QUEUE_FULL: { status: 503, retryable: true },
  WAKE_TIMEOUT: { status: 503, retryable: true },
  WAKE_FAILED: { status: 503, retryable: true },
  NO_HEALTHY_INSTANCE: { status: 503, retryable: true },
  UPSTREAM_REFUSED: { status: 502 },
  UPSTREAM_TIMEOUT: { status: 504 },
  UPSTREAM_ERROR: { status: 502 },
  NOT_FOUND: { status: 404 },
  BAD_REQUEST: { status: 400 },
  /** A request whose HTTP/1.1 framing is malformed or ambiguous (control bytes, CL with TE, two Hosts...): 400, connection closed. */
  BAD_REQUEST_FRAMING: { status: 400 },
  /** CONNECT, on a server that is not a forward proxy. */
  METHOD_NOT_ALLOWED: { status: 405 },
  /** The request head was not received within the headers timeout. */
  REQUEST_TIMEOUT: { status: 408 },
  /** The request head is larger than the parser accepts. */
  HEADERS_TOO_LARGE: { status: 431 },
  /** A management API body over its size limit. */
  BODY_TOO_LARGE: { status: 413 },
  /** A management API body in a content type it does not read (it takes JSON). */
  UNSUPPORTED_MEDIA_TYPE: { status: 415 },
  UNAUTHORIZED: { status: 401 },
  FORBIDDEN: { status: 403 },
  /** Service discovery: the calling tenant's `egress` does not name the service, or the host is not a `*.tenement.internal` name. */
  EGRESS_DENIED: { status: 403 },
  /** A mutating API call authenticated by the dashboard's session cookie without its `X-CSRF-Token`. */
  CSRF: { status: 403 },
  RATE_LIMITED: { status: 429, retryable: true },
  /** A service with autoCreate already has its `max` instances: an unknown id is not created (503). */
  AUTO_CREATE_LIMIT: { status: 503, retryable: true },
  CONFLICT: { status: 409 },
  /** A named snapshot larger than its service's `snapshots.maxBytes` even alone: not kept (plugins/snapshots). */
  SNAPSHOT_BUDGET: { status: 507 },
  /** A named snapshot could not be taken (CRIU's dump, the DATA_DIR copy or the archive failed; the instance runs on). */
  SNAPSHOT_FAILED: { status: 500 },
  /** A deploy whose new instance exited or was not ready within its startupTimeout (rolled back). */
  DEPLOY_FAILED: { status: 502 },
  /** A deploy whose new instance was not running and healthy within the deploy's timeout (rolled back). */
  DEPLOY_TIMEOUT: { status: 504 },
  STORE: { status: 500 },
  SERVER_LISTEN: { status: 500 },
  /** `ten`'s per-user context file is garbage, unsafe (writable by others) or names no such context (cli only). */
  CONTEXT_FILE: { status: 500 },
  WASM_OUTPUT_TOO_LARGE: { status: 502 },
  /** wasmtime was asked for and cannot run here (library not fetched, wrong platform): the service runs on V8. */
  WASMTIME_UNAVAILABLE: { status: 503 },
  /** The wasmtime engine refuses components (docs/wasm.md says what its C API lacks): they run on V8. */
  WASMTIME_COMPONENTS_UNSUPPORTED: { status: 501 },
  /** The engine could not compile (or serialize) a module; the message is the engine's. */
  WASM_COMPILE_FAILED: { status: 500 },
  /** Fleet mode (plugins/fleet): the NATS cluster could not be reached (or JetStream was not ready) within the bound at start. */
  FLEET_UNREACHABLE: { status: 503, retryable: true },
  /** Fleet mode: NATS is unreachable now, so a placement could not be claimed or read. */
  FLEET_UNAVAILABLE: { status: 503, retryable: true },
  /** Fleet mode: no live, active node fits the instance (labels, capacity). */
  FLEET_NO_NODE: { status: 503, retryable: true },
  /** Fleet mode: a request carries the node-to-node forwarding header without a valid signature of the fleet secret. */
  FLEET_FORGED: { status: 403 },
  /** Fleet mode: a forwarded request reached a node that does not own the instance (it is never forwarded twice). */
  FLEET_LOOP: { status: 508, retryable: true },
  /** Fleet mode: a move's data (a `limits.storage` instance's) does not fit the target node's quota image. */
  FLEET_NO_ROOM: { status: 507 },
} as const satisfies Record<string, ErrorSpec>;

type ErrorName = keyof typeof ERRORS;

export type ErrorCode = `TNM_ERR_${ErrorName}`;

/** `ErrorCodes.BAD_HOST === 'TNM_ERR_BAD_HOST'`: the names code uses, derived from the table so none lacks a status. */
export const ErrorCodes = Object.freeze(
  Object.fromEntries(Object.keys(ERRORS).map((name) => [name, `TNM_ERR_${name}`])),
) as { readonly [K in ErrorName]: `TNM_ERR_${K}` };

const SPECS: ReadonlyMap<string, ErrorSpec> = new Map(Object.entries(ERRORS).map(([name, spec]) => [`TNM_ERR_${name}`, spec]));

/** Every code with its status, for documentation and tests. */
export function errorTable(): ReadonlyMap<ErrorCode, ErrorSpec> {
  return SPECS as ReadonlyMap<ErrorCode, ErrorSpec>;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && SPECS.has(value);
}

/** The status a code answers with (500 for a string that is no code, e.g. from an untyped plugin). */
export function statusOf(code: ErrorCode): number {
  return SPECS.get(code)?.status ?? 500;
}

export interface TenementErrorOptions {
  plugin?: string;
  hook?: string;
  /**
   * HTTP status to answer with when this error reaches a client; the code's own status (ERRORS) when absent.
   * Only for an answer that is chosen at run time (a sandboxed plugin's deny).
   */
  status?: number;
  /** Seconds a client should wait before retrying (503s). */
  retryAfter?: number;
  cause?: unknown;
}

export class TenementError extends Error {
  readonly code: ErrorCode;
  readonly plugin?: string;
  readonly hook?: string;
  readonly status: number;
  readonly retryAfter?: number;

  constructor(code: ErrorCode, message: string, options: TenementErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TenementError';
    this.code = code;
    this.plugin = options.plugin;
    this.hook = options.hook;
    this.status = options.status ?? statusOf(code);
    this.retryAfter = options.retryAfter;
  }
}

export function isTenementError(error: unknown): error is TenementError {
  return error instanceof TenementError;
}

/**
 * What a plugin's failure in `hook` becomes (Rollup's pluginCode): a coded error keeps its code, status and
 * message and gains the plugin and hook it surfaced in (unless it already names where it came from, e.g. a
 * nested hook); anything else is a HOOK_FAILED naming both.
 */
export function pluginError(error: unknown, plugin: string, hook: string): TenementError {
  if (!isTenementError(error)) {
    return new TenementError(ErrorCodes.HOOK_FAILED, `plugin '${plugin}' failed in hook '${hook}': ${errorMessage(error)}`, {
      plugin,
      hook,
      cause: error,
    });
  }
  if (error.plugin !== undefined && error.hook !== undefined) return error;
  const located = new TenementError(error.code, error.message, {
    plugin: error.plugin ?? plugin,
    hook: error.hook ?? hook,
    status: error.status,
    retryAfter: error.retryAfter,
    cause: error.cause,
  });
  if (error.stack !== undefined) located.stack = error.stack;
  return located;
}

/** The fields a log line carries for an error: its message, and its code, plugin and hook when it has them. */
export function errorFields(error: unknown): { err: string; code?: ErrorCode; plugin?: string; hook?: string } {
  if (!isTenementError(error)) return { err: errorMessage(error) };
  const fields: { err: string; code?: ErrorCode; plugin?: string; hook?: string } = { err: error.message, code: error.code };
  if (error.plugin !== undefined) fields.plugin = error.plugin;
  if (error.hook !== undefined) fields.hook = error.hook;
  return fields;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
