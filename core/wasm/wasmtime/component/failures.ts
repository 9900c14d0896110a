/** What a failed component call was, from wasmtime's message: a timeout, a trap, out of memory, too much output. */
import { WASM_PAGE_BYTES } from '../../cap-memory.ts';
import type { WasmFailureKind } from '../../types.ts';
import { MAX_WASMTIME_BODY_BYTES } from './values.ts';

/** The call's deadline passed before the guest was entered. */
export class DeadlinePassed extends Error {}
/** wasmtime answered the call with an error (a trap, an interrupt, a failed host function): its message. */
export class GuestFailure extends Error {}

/** wasmtime's message ends with the cause ("wasm trap: ..."); that is the part worth a log line. */
export function classify(message: string, input: { capPages: number; deadlineMs: number }): { kind: WasmFailureKind; message: string } {
  if (/wasm trap: interrupt/.test(message)) return { kind: 'timeout', message };
  if (/fuel allocated for hostcalls has been exhausted/.test(message)) {
    return { kind: 'output-too-large', message: `the guest passed more than the wasmtime engine takes in one call (a body over about ${MAX_WASMTIME_BODY_BYTES / 1_048_576} MiB): ${message.split('\n')[0]}` };
  }
  const lines = message.split('\n').map((line) => line.trim()).filter(Boolean);
  const cause = lines[lines.length - 1] ?? message;
  if (/memory|limit/i.test(cause) && /exceed|grow|allocat/i.test(cause)) {
    return { kind: 'out-of-memory', message: `${cause} (memory cap ${(input.capPages * WASM_PAGE_BYTES) / 1_048_576} MiB)` };
  }
  if (/wasm trap|host function/.test(message)) return { kind: 'trap', message: cause.replace(/^wasm trap: /, '') };
  return { kind: 'error', message: cause };
}
