/** Many requests to a weighted host and how they spread over its instances (routing and load-balancing tests). */
import type { Kernel } from '../core/kernel.ts';
import { request, type Reply } from './helpers.ts';

/** `total` requests to `host` at most `parallel` at a time (through `kernel`, or an edge's URL); every reply. */
export async function manyRequests(
  kernel: Kernel | string,
  host: string,
  total: number,
  options: { path?: string; parallel?: number; timeoutMs?: number } = {},
): Promise<Reply[]> {
  const replies: Reply[] = [];
  let next = 0;
  const client = async (): Promise<void> => {
    while (next < total) {
      next += 1;
      replies.push(await request(kernel, host, options.path ?? '/', options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }));
    }
  };
  await Promise.all(Array.from({ length: options.parallel ?? 4 }, client));
  return replies;
}

/** Replies per instance (`x-instance`); anything but a 200 is counted under its status and body. */
export function tally(replies: readonly Reply[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const reply of replies) {
    const key = reply.status === 200 ? String(reply.headers['x-instance']) : `HTTP ${reply.status}: ${reply.body}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

export const showTally = (counts: Map<string, number>): string => JSON.stringify(Object.fromEntries(counts));
