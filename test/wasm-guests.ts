// The C guests of the wasm tier tests, built with clang for WASI preview 1: examples/wasm-c/handler.c (the
// example CGI function) and fixtures/wasm/guest.c (the test guest: spins, sleeps, escapes, ...).
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import type { ServiceInput } from '../core/config/schema.ts';
import type { EngineName } from '../core/wasm/engine.ts';
import type { ModuleCache } from '../core/wasm/module-cache.ts';
import type { CompiledModule } from '../core/wasm/pool.ts';
import { FIXTURES, ROOT } from './helpers.ts';

export interface CGuests {
  handler: string;
  guest: string;
  /** Why the tests skip (clang or wasi-libc missing), or false when both were built. */
  skip: string | false;
}

/** Builds both guests into `dir`. */
export function buildCGuests(dir: string): CGuests {
  const handler = path.join(dir, 'handler.wasm');
  const guest = path.join(dir, 'guest.wasm');
  try {
    execFileSync('clang', ['--target=wasm32-wasi', '-O2', path.join(ROOT, 'examples', 'wasm-c', 'handler.c'), '-o', handler], { stdio: 'pipe' });
    execFileSync('clang', ['--target=wasm32-wasi', '-O2', path.join(FIXTURES, 'wasm', 'guest.c'), '-o', guest], { stdio: 'pipe' });
    return { handler, guest, skip: false };
  } catch (error) {
    const skip = `needs clang with wasi-libc (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32): ${(error as Error).message.split('\n')[0]}`;
    return { handler, guest, skip };
  }
}

/**
 * A wasm function service for `module`, its instances created on first request; the tests make many tenants from
 * one loopback address, more than autoCreate's default 10 a minute.
 */
export function wasmFunction(module: string, overrides: Partial<ServiceInput> = {}): ServiceInput {
  return { isolation: 'wasm', module, autoCreate: { perAddress: { count: 1_000 } }, ...overrides };
}

/** A WASI module loaded through `cache` for `engine`, compiled with `capPages`; a component is an error here. */
export async function loadModule(cache: ModuleCache, file: string, capPages: number, engine: EngineName): Promise<CompiledModule> {
  const code = await cache.load(file, capPages, engine);
  if (code.kind !== 'module') throw new Error(`${file} is a component, not a WASI module`);
  return code.compiled;
}
