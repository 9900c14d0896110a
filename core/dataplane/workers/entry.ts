/**
 * The proxy worker's entry: worker-main.ts bundled into one plain ES module in a checkout, as the wasm pool's
 * worker is (tsx would cost each process start-up time and CPU on every request's code), the compiled `.js` in
 * the package (core/bundled-worker.ts).
 */
import { fileURLToPath } from 'node:url';
import { COMPILED, bundledWorker, type BundledWorker } from '../../bundled-worker.ts';

export type WorkerEntry = BundledWorker;

const WORKER = fileURLToPath(new URL(COMPILED ? './worker-main.js' : './worker-main.ts', import.meta.url));

export function proxyWorkerEntry(): WorkerEntry {
  return bundledWorker(WORKER, 'tenement-proxy');
}
