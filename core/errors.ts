/**
 * Coded errors, in the spirit of Fastify's FST_ERR_*: the code is stable and greppable, the message is for
 * humans, and `plugin`/`hook` say where a failure came from so a stack trace is rarely needed.
 */
export const ErrorCodes = {
  CONFIG_NOT_FOUND: 'TNM_ERR_CONFIG_NOT_FOUND',
  CONFIG_INVALID: 'TNM_ERR_CONFIG_INVALID',
  CONFIG_LOAD: 'TNM_ERR_CONFIG_LOAD',
  PLUGIN_MANIFEST: 'TNM_ERR_PLUGIN_MANIFEST',
  PLUGIN_DUPLICATE: 'TNM_ERR_PLUGIN_DUPLICATE',
  PLUGIN_MISSING_DEPENDENCY: 'TNM_ERR_PLUGIN_MISSING_DEPENDENCY',
  PLUGIN_KERNEL_VERSION: 'TNM_ERR_PLUGIN_KERNEL_VERSION',
  PLUGIN_SETUP: 'TNM_ERR_PLUGIN_SETUP',
  HOOK_FAILED: 'TNM_ERR_HOOK_FAILED',
  TIER_UNAVAILABLE: 'TNM_ERR_TIER_UNAVAILABLE',
  SPAWN_FAILED: 'TNM_ERR_SPAWN_FAILED',
  STARTUP_TIMEOUT: 'TNM_ERR_STARTUP_TIMEOUT',
  NO_PORT: 'TNM_ERR_NO_PORT',
  NO_TENANT_UID: 'TNM_ERR_NO_TENANT_UID',
  INVALID_STATE: 'TNM_ERR_INVALID_STATE',
  INSTANCE_FAILED: 'TNM_ERR_INSTANCE_FAILED',
  INSTANCE_STOPPED: 'TNM_ERR_INSTANCE_STOPPED',
  UNKNOWN_SERVICE: 'TNM_ERR_UNKNOWN_SERVICE',
  UNKNOWN_INSTANCE: 'TNM_ERR_UNKNOWN_INSTANCE',
  UNKNOWN_HOST: 'TNM_ERR_UNKNOWN_HOST',
  BAD_HOST: 'TNM_ERR_BAD_HOST',
  BAD_NAME: 'TNM_ERR_BAD_NAME',
  WAKE_QUEUE_FULL: 'TNM_ERR_WAKE_QUEUE_FULL',
  WAKE_TIMEOUT: 'TNM_ERR_WAKE_TIMEOUT',
  WAKE_FAILED: 'TNM_ERR_WAKE_FAILED',
  NO_HEALTHY_INSTANCE: 'TNM_ERR_NO_HEALTHY_INSTANCE',
  UPSTREAM_REFUSED: 'TNM_ERR_UPSTREAM_REFUSED',
  UPSTREAM_TIMEOUT: 'TNM_ERR_UPSTREAM_TIMEOUT',
  UPSTREAM_ERROR: 'TNM_ERR_UPSTREAM_ERROR',
  NOT_FOUND: 'TNM_ERR_NOT_FOUND',
  BAD_REQUEST: 'TNM_ERR_BAD_REQUEST',
  /** A request whose HTTP/1.1 framing is malformed or ambiguous (control bytes, CL with TE, two Hosts...): 400, connection closed. */
  BAD_REQUEST_FRAMING: 'TNM_ERR_BAD_REQUEST_FRAMING',
  UNAUTHORIZED: 'TNM_ERR_UNAUTHORIZED',
  FORBIDDEN: 'TNM_ERR_FORBIDDEN',
  RATE_LIMITED: 'TNM_ERR_RATE_LIMITED',
  /** A service with autoCreate already has its `max` instances: an unknown id is not created (503). */
  AUTO_CREATE_LIMIT: 'TNM_ERR_AUTO_CREATE_LIMIT',
  CONFLICT: 'TNM_ERR_CONFLICT',
  DEPLOY_FAILED: 'TNM_ERR_DEPLOY_FAILED',
  STORE: 'TNM_ERR_STORE',
  SERVER_LISTEN: 'TNM_ERR_SERVER_LISTEN',
  WASM_OUTPUT_TOO_LARGE: 'TNM_ERR_WASM_OUTPUT_TOO_LARGE',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface TenementErrorOptions {
  plugin?: string;
  hook?: string;
  /** HTTP status to answer with when this error reaches a client. */
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
    this.status = options.status ?? 500;
    this.retryAfter = options.retryAfter;
  }
}

export function isTenementError(error: unknown): error is TenementError {
  return error instanceof TenementError;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
