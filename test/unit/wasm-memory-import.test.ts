// The rewrite that lets V8 run a WASI command in a lent memory (core/wasm/memory-import.ts): the module's one
// defined memory becomes the import `tenement.memory` with the same limits, everything else as it was; the limits
// travel in a custom section no module can forge; a module it cannot rewrite comes back unchanged.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { capMemory } from '../../core/wasm/cap-memory.ts';
import { MEMORY_IMPORT_MODULE, MEMORY_IMPORT_NAME, MEMORY_SHAPE_SECTION, importOwnMemory, memoryShape } from '../../core/wasm/memory-import.ts';

const work = mkdtempSync(path.join(os.tmpdir(), 'tenement-memory-import-'));
after(() => rmSync(work, { recursive: true, force: true }));

function wat(name: string, source: string): Uint8Array | null {
  writeFileSync(path.join(work, `${name}.wat`), source);
  try {
    execFileSync('wat2wasm', ['--debug-names', path.join(work, `${name}.wat`), '-o', path.join(work, `${name}.wasm`)], { stdio: 'pipe' });
    return new Uint8Array(readFileSync(path.join(work, `${name}.wasm`)));
  } catch {
    return null;
  }
}

// No imports at all: the rewrite makes the import section.
const OWN = wat(
  'own',
  `(module
    (memory (export "memory") 2)
    (data (i32.const 1000) "lent")
    (func (export "read") (result i32) (i32.load (i32.const 1000)))
    (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))`,
);
// A function import before the memory: the rewrite adds to the import section it has.
const WITH_IMPORTS = wat(
  'imports',
  `(module
    (import "env" "answer" (func $answer (result i32)))
    (memory (export "memory") 1)
    (func (export "call") (result i32) (call $answer)))`,
);
const NO_MEMORY = wat('none', `(module (func (export "f") (result i32) (i32.const 7)))`);
const skip = OWN && WITH_IMPORTS && NO_MEMORY ? false : 'needs wat2wasm (apt-get install wabt)';

/** A custom section as a module could bring it: `name`, then `payload`. */
function withCustom(bytes: Uint8Array, name: string, payload: number[]): Uint8Array {
  const nameBytes = new TextEncoder().encode(name);
  const body = [nameBytes.length, ...nameBytes, ...payload];
  return new Uint8Array([...bytes, 0, body.length, ...body]);
}

test('a module that defines its memory imports it instead, with the same limits, and runs in the memory given', { skip }, () => {
  const module = new WebAssembly.Module(importOwnMemory(capMemory(OWN!, 8)));
  assert.deepEqual(WebAssembly.Module.imports(module), [{ module: MEMORY_IMPORT_MODULE, name: MEMORY_IMPORT_NAME, kind: 'memory' }]);
  assert.deepEqual(
    WebAssembly.Module.exports(module).map((e) => `${e.kind}:${e.name}`),
    ['memory:memory', 'function:read', 'function:grow'],
  );
  assert.deepEqual(memoryShape(module), { initial: 2, maximum: 8 });
  const memory = new WebAssembly.Memory({ initial: 2, maximum: 8 });
  const instance = new WebAssembly.Instance(module, { [MEMORY_IMPORT_MODULE]: { [MEMORY_IMPORT_NAME]: memory } });
  const exports = instance.exports as { memory: WebAssembly.Memory; read: () => number; grow: (pages: number) => number };
  assert.equal(exports.memory, memory, 'the memory it exports is the one it was given');
  assert.equal(Buffer.from(memory.buffer, 1000, 4).toString('latin1'), 'lent', 'its data segment landed in the given memory');
  assert.equal(exports.read(), Buffer.from('lent', 'latin1').readUInt32LE(0));
  // The cap still holds: growing past it fails inside the guest.
  assert.equal(exports.grow(7), -1);
  assert.equal(exports.grow(6), 2);
  // A memory over the limits does not link.
  assert.throws(() => new WebAssembly.Instance(module, { [MEMORY_IMPORT_MODULE]: { [MEMORY_IMPORT_NAME]: new WebAssembly.Memory({ initial: 2, maximum: 9 }) } }), WebAssembly.LinkError);
});

test('the memory import joins the imports a module has, after them', { skip }, () => {
  const module = new WebAssembly.Module(importOwnMemory(capMemory(WITH_IMPORTS!, 4)));
  assert.deepEqual(
    WebAssembly.Module.imports(module).map((i) => `${i.module}.${i.name}:${i.kind}`),
    ['env.answer:function', `${MEMORY_IMPORT_MODULE}.${MEMORY_IMPORT_NAME}:memory`],
  );
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 4 });
  const instance = new WebAssembly.Instance(module, { env: { answer: () => 42 }, [MEMORY_IMPORT_MODULE]: { [MEMORY_IMPORT_NAME]: memory } });
  assert.equal((instance.exports as { call: () => number }).call(), 42);
});

test('limits a module forges in a section of the same name are dropped: only the real ones are read', { skip }, () => {
  const forged = withCustom(OWN!, MEMORY_SHAPE_SECTION, [1, 0x80, 0x80, 0x04]);
  const module = new WebAssembly.Module(importOwnMemory(capMemory(forged, 8)));
  assert.equal(WebAssembly.Module.customSections(module, MEMORY_SHAPE_SECTION).length, 1);
  assert.deepEqual(memoryShape(module), { initial: 2, maximum: 8 });
});

test('a module without a memory of its own comes back as it was, and reads as having none', { skip }, () => {
  const capped = capMemory(NO_MEMORY!, 8);
  assert.equal(importOwnMemory(capped), capped);
  assert.equal(memoryShape(new WebAssembly.Module(capped)), null);
});
