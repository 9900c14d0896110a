// Runs inside the QuickJS guest before the handler module (bundled in by `ten build`). Components are built with
// WASI stubbed out (no file system, env, clocks or stdout: anything that reaches WASI traps), so the web globals a
// handler author expects are rebuilt here on Tenement's own host imports.
import { write } from 'tenement:http/log@0.1.0';
import { now, randomBytes, utf8Decode, utf8Encode } from 'tenement:http/runtime@0.1.0';

const show = (value) => {
  if (typeof value === 'string') return value;
  if (value instanceof Error) return value.stack ? `${value.name}: ${value.message}\n${value.stack}` : `${value.name}: ${value.message}`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
};
const line = (to) => (...args) => {
  for (const part of args.map(show).join(' ').split('\n')) write(to, part);
};
globalThis.console = {
  log: line('stdout'),
  info: line('stdout'),
  debug: line('stdout'),
  warn: line('stderr'),
  error: line('stderr'),
};

// Clocks: QuickJS's own Date.now and `new Date()` call WASI, which traps.
const HostDate = globalThis.Date;
// A function rather than `class extends Date`: QuickJS refuses to redefine the inherited static `now`.
function TenementDate(...args) {
  if (!new.target) return new HostDate(now()).toString();
  return args.length === 0 ? new HostDate(now()) : new HostDate(...args);
}
TenementDate.prototype = HostDate.prototype;
Object.defineProperty(TenementDate, 'now', { value: () => now(), writable: true, configurable: true });
TenementDate.parse = HostDate.parse;
TenementDate.UTC = HostDate.UTC;
globalThis.Date = TenementDate;
// Host imports cannot be called here: this module runs at build time, in the pre-initialised snapshot.
let started;
const sinceStart = () => {
  started ??= now();
  return now() - started;
};
// Replaced, not patched: the bundler may hand `performance` in as a read-only module namespace.
globalThis.performance = { now: sinceStart, timeOrigin: 0 };

// Randomness from the host's CSPRNG.
const fill = (array) => {
  const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  bytes.set(randomBytes(bytes.length));
  return array;
};
globalThis.crypto = { getRandomValues: fill };
Math.random = () => {
  const b = randomBytes(7);
  // 53 random bits -> [0, 1)
  let x = (b[0] & 0x1f) * 2 ** 48;
  for (let i = 1; i < 7; i++) x += b[i] * 2 ** (8 * (6 - i));
  return x / 2 ** 53;
};

// UTF-8 TextEncoder / TextDecoder (QuickJS has neither): the host does the work, natively.
class TenementTextEncoder {
  get encoding() {
    return 'utf-8';
  }
  encode(text = '') {
    return utf8Encode(String(text));
  }
}
class TenementTextDecoder {
  get encoding() {
    return 'utf-8';
  }
  decode(input) {
    if (input === undefined) return '';
    const bytes = input instanceof Uint8Array ? input : ArrayBuffer.isView(input) ? new Uint8Array(input.buffer, input.byteOffset, input.byteLength) : new Uint8Array(input);
    return utf8Decode(bytes);
  }
}
if (typeof globalThis.TextEncoder === 'undefined') globalThis.TextEncoder = TenementTextEncoder;
if (typeof globalThis.TextDecoder === 'undefined') globalThis.TextDecoder = TenementTextDecoder;
