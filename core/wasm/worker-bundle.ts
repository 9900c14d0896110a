/**
 * The wasm pool's worker entry: core/wasm/worker.ts bundled into one plain ES module in a checkout (tsx inside a
 * worker thread doubles the CPU each call costs), the compiled `.js` in the package (core/bundled-worker.ts).
 */
import { fileURLToPath, pathToFileURL } from 'node:url';
import { COMPILED, bundledWorker } from '../bundled-worker.ts';

export interface WorkerEntry {
  filename: string;
  execArgv: string[];
}

const WORKER = fileURLToPath(new URL(COMPILED ? './worker.js' : './worker.ts', import.meta.url));

export function workerEntry(): WorkerEntry {
  const { file, execArgv } = bundledWorker(WORKER, 'tenement-wasm');
  return { filename: pathToFileURL(file).href, execArgv };
}
