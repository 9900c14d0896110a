// The thread's pool of memories lent to WASI commands (core/wasm/memory-pool.ts): what comes back is zeroed at
// once and lent again, what grew or is large never comes back, and the pool holds a bounded number.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WASM_PAGE_BYTES } from '../../core/wasm/cap-memory.ts';
import { MAX_POOLED_PAGES, lendMemory, memoryPoolStats, returnMemory } from '../../core/wasm/memory-pool.ts';

const nonzero = (memory: WebAssembly.Memory): number => new Uint8Array(memory.buffer).reduce((n, b) => n + (b !== 0 ? 1 : 0), 0);

test('a memory given back is zeroed at once and lent again, at its shape only', () => {
  const shape = { initial: 2, maximum: 11 };
  const memory = lendMemory(shape);
  new Uint8Array(memory.buffer).fill(0x5a);
  returnMemory(shape, memory);
  assert.equal(nonzero(memory), 0, 'zeroed as it came back, before anyone asks for it');
  assert.notEqual(lendMemory({ initial: 2, maximum: 12 }), memory, 'another shape gets another memory');
  const again = lendMemory(shape);
  assert.equal(again, memory);
  assert.equal(again.buffer.byteLength, 2 * WASM_PAGE_BYTES);
});

test('a memory that grew, or one over the pooled size, is left to the collector', () => {
  const shape = { initial: 1, maximum: 13 };
  const grown = lendMemory(shape);
  grown.grow(1);
  const before = memoryPoolStats().free;
  returnMemory(shape, grown);
  assert.equal(memoryPoolStats().free, before);
  assert.notEqual(lendMemory(shape), grown);

  const large = { initial: MAX_POOLED_PAGES + 1, maximum: MAX_POOLED_PAGES + 1 };
  returnMemory(large, lendMemory(large));
  assert.equal(memoryPoolStats().free, before);
});

test('the pool keeps at most four of a shape, and at most 16 MiB in all', () => {
  const shape = { initial: 1, maximum: 14 };
  const lent = Array.from({ length: 6 }, () => lendMemory(shape));
  const before = memoryPoolStats().free;
  for (const memory of lent) returnMemory(shape, memory);
  assert.equal(memoryPoolStats().free - before, 4);

  // 2 MiB memories of many shapes: the oldest shapes give way, the total stays within 16 MiB.
  for (let max = 40; max < 60; max++) {
    const big = { initial: MAX_POOLED_PAGES, maximum: max };
    returnMemory(big, lendMemory(big));
  }
  assert.ok(memoryPoolStats().freeBytes <= 16 * 1024 * 1024, `${memoryPoolStats().freeBytes} bytes held`);
});
