/**
 * Tenement's WIT worlds as the wasmtime engine needs them: the types of the exports it calls and of the imports
 * it provides (sdk/wit/handler.wit, sdk/wit/plugin.wit), written out by hand because the engine converts values
 * by type and the C API's type reflection would cost a walk per call. A test builds both worlds and runs them
 * on both engines, which is what keeps this file true to the .wit files.
 */
import type { WitType } from './values.ts';

const headers: WitType = { list: { tuple: ['string', 'string'] } };

export const HTTP_REQUEST: WitType = {
  record: [
    ['method', 'string'],
    ['path', 'string'],
    ['query', 'string'],
    ['headers', headers],
    ['body', 'bytes'],
  ],
};

export const HTTP_RESPONSE: WitType = {
  record: [
    ['status', 'u16'],
    ['headers', headers],
    ['body', 'bytes'],
  ],
};

const PLUGIN_REQUEST: WitType = {
  record: [
    ['method', 'string'],
    ['host', 'string'],
    ['path', 'string'],
    ['headers', headers],
    ['remote-address', 'string'],
  ],
};

const AUTH_DECISION: WitType = {
  variant: [
    ['allow', null],
    ['deny', { record: [['status', 'u16'], ['message', 'string']] }],
    ['no-answer', null],
  ],
};

const ROUTE_TARGET: WitType = { option: { record: [['service', 'string'], ['instance', { option: 'string' }]] } };

const INSTANCE_EVENT: WitType = {
  record: [
    ['type', 'string'],
    ['instance', 'string'],
    ['service', 'string'],
    ['id', 'string'],
    ['from', 'string'],
    ['to', 'string'],
    ['reason', { option: 'string' }],
    ['at', 'u64'],
  ],
};

export interface ExportSignature {
  /** The export's name in the component (kebab-case). */
  name: string;
  params: WitType[];
  /** null: the function returns nothing. */
  result: WitType | null;
}

/** Root exports of both worlds, by the names callers use (jco's camelCase and the WIT name). */
export const EXPORTS = new Map<string, ExportSignature>();
for (const signature of [
  { name: 'handle', params: [HTTP_REQUEST], result: HTTP_RESPONSE },
  { name: 'auth', params: [PLUGIN_REQUEST], result: AUTH_DECISION },
  { name: 'route', params: [PLUGIN_REQUEST], result: ROUTE_TARGET },
  { name: 'on-event', params: [INSTANCE_EVENT], result: null },
] satisfies ExportSignature[]) {
  EXPORTS.set(signature.name, signature);
  EXPORTS.set(signature.name.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase()), signature);
}

/** The interfaces with functions the host provides, by versioned name, and each function's types. */
export interface ImportSignature {
  params: WitType[];
  result: WitType | null;
}

const stringResult = (ok: WitType | null): WitType => ({ result: [ok, 'string'] });
const labels: WitType = { list: { tuple: ['string', 'string'] } };

export const IMPORTS: Record<string, Record<string, ImportSignature>> = {
  'tenement:http/log@0.1.0': {
    write: { params: [{ enum: ['stdout', 'stderr'] }, 'string'], result: null },
  },
  'tenement:http/runtime@0.1.0': {
    now: { params: [], result: 'f64' },
    'random-bytes': { params: ['u32'], result: 'bytes' },
    'utf8-encode': { params: ['string'], result: 'bytes' },
    'utf8-decode': { params: ['bytes'], result: 'string' },
  },
  'tenement:http/tenant-data@0.1.0': {
    read: { params: ['string'], result: stringResult({ option: 'bytes' }) },
    write: { params: ['string', 'bytes'], result: stringResult(null) },
    remove: { params: ['string'], result: stringResult('bool') },
    names: { params: [], result: stringResult({ list: 'string' }) },
  },
  'tenement:http/metrics@0.1.0': {
    set: { params: ['string', labels, 'f64'], result: stringResult(null) },
    add: { params: ['string', labels, 'f64'], result: stringResult(null) },
  },
};

/** Types-only interfaces: imported by components (for their records), with nothing in them to link. */
export const TYPE_ONLY_IMPORTS = ['tenement:http/types@0.1.0', 'tenement:plugin/types@0.1.0'];

/** What a plugin may import (the rest of IMPORTS would be capabilities plugins are not granted). */
export const PLUGIN_IMPORTS = new Set(['tenement:http/log@0.1.0', 'tenement:http/runtime@0.1.0']);
