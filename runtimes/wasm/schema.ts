/** The config fields the wasm runtime owns (docs/wasm.md): a service's `wasm` options. */
import { z } from 'zod';
import { duration, size } from '../../core/config/fields.ts';

/** How a wasm service's requests run in the shared worker pool. */
const wasmOptions = z.strictObject({
  /** Wall-clock deadline of one request in the pool (queue wait included); past it the worker is replaced and the request gets 504. */
  timeout: duration.default(10_000),
  /** A new instance for every request instead of one kept per tenant (WASI CGI modules always start fresh). */
  fresh: z.boolean().default(false),
  /** Requests of one instance in the pool (running or queued) beyond which new ones get 503 at once. */
  maxQueue: z.number().int().min(1).default(256),
  /** Largest request body passed to the guest; a bigger one gets 413. */
  maxBody: size.default(10_000_000),
  /**
   * The engine: 'v8' or 'wasmtime' (WASI modules; falls back to V8, logged, where its library is missing or for
   * components). Default: the runtime's `engine` option, else 'v8'.
   */
  engine: z.enum(['v8', 'wasmtime']).optional(),
  /**
   * Fuel metering (wasmtime): the most fuel (about one unit per wasm instruction) one request may use; past it
   * the guest traps (504). Each request's figure is in `tenement_wasm_fuel_consumed_total`. V8 has no metering.
   */
  fuel: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
});

export const wasmServiceFields = {
  /** isolation 'wasm': deadline, instance reuse and queue bound of the service's requests (docs/wasm.md). */
  wasm: wasmOptions.optional(),
};
