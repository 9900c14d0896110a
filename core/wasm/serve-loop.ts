/**
 * A pool worker's resident task (channels.ts): takes calls from its buffer's two slots in turn, runs each with the
 * worker's usual `run`, and answers in the same slot or on its port. When the next call already waits in the other
 * slot it starts at once; otherwise the loop waits with Atomics.waitAsync, so the worker's event loop stays free
 * between calls (the pool's drop broadcasts arrive at once). Ends when the pool asks (close) or when piscina
 * terminates the worker (a call's deadline).
 */
import { receiveMessageOnPort } from 'node:worker_threads';
import { READY, REQUEST, REQUEST_BODY, REQUEST_JSON, RESPONSE, RESULT_BODY, RESULT_JSON, SLOTS, decodeTask, encodeResult, sharedOf, slotCell, slotsOf, waitAsync, type ServeTask } from './channel-wire.ts';
import type { WasmtimeShared } from './wasmtime/host.ts';
import type { WorkerResult, WorkerTask } from './protocol.ts';

/** Calls run back to back from the slots before the loop lets its event loop turn once (drop broadcasts, timers). */
const TURN_EVERY = 32;

/** `afterAnswer`: work taken off the call's path, run once its answer is posted (the next call's instance made ahead). */
export async function serveLoop(serve: ServeTask, run: (task: WorkerTask) => Promise<WorkerResult>, afterAnswer: () => void = () => undefined): Promise<{ served: number }> {
  const { cells, bytes: slotBytes } = slotsOf(serve.buffer);
  const shareds = new Map<string, WasmtimeShared>();
  // A pending waitAsync alone does not keep a thread's event loop alive.
  const alive = setInterval(() => undefined, 2 ** 30);
  let served = 0;
  let backToBack = 0;
  Atomics.store(cells, READY, 1);
  Atomics.notify(cells, READY);
  try {
    for (let slot = 0; ; slot = (slot + 1) % SLOTS) {
      const request = slotCell(slot, REQUEST);
      const bytes = slotBytes[slot]!;
      let flag = Atomics.load(cells, request);
      if (flag !== 0 && ++backToBack >= TURN_EVERY) {
        backToBack = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      // Taken with a compare-exchange: the pool may withdraw a call that has not started (its deadline, or a
      // runaway ahead of it here), and exactly one side gets it.
      for (;;) {
        while (flag === 0) {
          backToBack = 0;
          const wait = waitAsync(cells, request, 0);
          if (wait.async) await wait.value;
          flag = Atomics.load(cells, request);
        }
        if (flag === 2 || Atomics.compareExchange(cells, request, flag, 0) === flag) break;
        flag = Atomics.load(cells, request);
      }
      if (flag === 2) return { served };
      let task: WorkerTask | null;
      if (flag === 1) {
        task = decodeTask(bytes, cells[slotCell(slot, REQUEST_JSON)]!, cells[slotCell(slot, REQUEST_BODY)]!, shareds);
      } else {
        task = (receiveMessageOnPort(serve.port)?.message as WorkerTask | undefined) ?? null;
        const shared = task ? sharedOf(task) : undefined;
        if (shared) shareds.set(shared.engine, shared);
      }
      let result: WorkerResult | { thrown: string };
      try {
        result = task ? await run(task) : { thrown: 'the call did not reach the worker whole' };
      } catch (error) {
        result = { thrown: error instanceof Error ? error.message : String(error) };
      }
      served++;
      const wire = task && !('thrown' in result) ? encodeResult(task.op, result, bytes) : null;
      const response = slotCell(slot, RESPONSE);
      if (wire) {
        cells[slotCell(slot, RESULT_JSON)] = wire.json;
        cells[slotCell(slot, RESULT_BODY)] = wire.body;
        Atomics.store(cells, response, 1);
      } else {
        serve.port.postMessage(result);
        Atomics.store(cells, response, 2);
      }
      Atomics.notify(cells, response);
      // The work ahead only when no call is waiting already: one that is runs at once, as before, rather than
      // wait behind it. (Stepping aside first, a short Atomics.wait so the answer's thread gets a core, cost a
      // context switch per call: ~25 µs more CPU per call at c32 and fewer calls/s, A/B in one process.)
      if (Atomics.load(cells, slotCell((slot + 1) % SLOTS, REQUEST)) === 0) {
        try {
          afterAnswer();
        } catch {
          // Only ever work done ahead: the next call does it itself.
        }
      }
    }
  } finally {
    clearInterval(alive);
    serve.port.close();
  }
}
