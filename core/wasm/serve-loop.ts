/**
 * A pool worker's resident task (channels.ts): waits on its buffer for calls, runs each with the worker's usual
 * `run`, and answers in the buffer or on its port. Waiting is Atomics.waitAsync, so the worker's event loop stays
 * free between calls (the pool's drop broadcasts arrive at once, as before). Ends when the pool asks (close) or
 * when piscina terminates the worker (a call's deadline).
 */
import { receiveMessageOnPort } from 'node:worker_threads';
import { HEAD, READY, REQUEST, RESPONSE, decodeTask, encodeResult, sharedOf, waitAsync, type ServeTask } from './channel-wire.ts';
import type { WasmtimeShared } from './wasmtime/host.ts';
import type { WorkerResult, WorkerTask } from './protocol.ts';

/** `afterAnswer`: work taken off the call's path, run once its answer is posted (the next call's instance made ahead). */
export async function serveLoop(serve: ServeTask, run: (task: WorkerTask) => Promise<WorkerResult>, afterAnswer: () => void = () => undefined): Promise<{ served: number }> {
  const cells = new Int32Array(serve.buffer, 0, HEAD / 4);
  const bytes = new Uint8Array(serve.buffer, HEAD);
  const shareds = new Map<string, WasmtimeShared>();
  // A pending waitAsync alone does not keep a thread's event loop alive.
  const alive = setInterval(() => undefined, 2 ** 30);
  let served = 0;
  Atomics.store(cells, READY, 1);
  Atomics.notify(cells, READY);
  try {
    for (;;) {
      let flag = Atomics.load(cells, REQUEST);
      while (flag === 0) {
        const wait = waitAsync(cells, REQUEST, 0);
        if (wait.async) await wait.value;
        flag = Atomics.load(cells, REQUEST);
      }
      if (flag === 2) return { served };
      let task: WorkerTask | null;
      if (flag === 1) {
        task = decodeTask(bytes, cells[2]!, cells[3]!, shareds);
      } else {
        task = (receiveMessageOnPort(serve.port)?.message as WorkerTask | undefined) ?? null;
        const shared = task ? sharedOf(task) : undefined;
        if (shared) shareds.set(shared.engine, shared);
      }
      Atomics.store(cells, REQUEST, 0);
      let result: WorkerResult | { thrown: string };
      try {
        result = task ? await run(task) : { thrown: 'the call did not reach the worker whole' };
      } catch (error) {
        result = { thrown: error instanceof Error ? error.message : String(error) };
      }
      served++;
      const wire = task && !('thrown' in result) ? encodeResult(task.op, result, bytes) : null;
      if (wire) {
        cells[4] = wire.json;
        cells[5] = wire.body;
        Atomics.store(cells, RESPONSE, 1);
      } else {
        serve.port.postMessage(result);
        Atomics.store(cells, RESPONSE, 2);
      }
      Atomics.notify(cells, RESPONSE);
      // The work ahead only when no call is waiting already: one that is runs at once, as before, rather than
      // wait behind it. (Stepping aside first, a short Atomics.wait so the answer's thread gets a core, cost a
      // context switch per call: ~25 µs more CPU per call at c32 and fewer calls/s, A/B in one process.)
      if (Atomics.load(cells, REQUEST) === 0) {
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
