/** The OTLP receiver the tracing benches export to, in a process of its own (bench/otel.ts, otel-ab.ts, otel-profile.ts). */
import { fork } from 'node:child_process';

/** The receiver in a process of its own (so its decoding is not counted as this process's CPU). */
const RECEIVER_CHILD = `
const { startOtlpReceiver } = await import(${JSON.stringify(new URL('../test/otlp-receiver.ts', import.meta.url).href)});
const receiver = await startOtlpReceiver({ answer: process.env.ANSWER, keep: false, decode: process.env.DECODE });
process.send(receiver.url);
process.on('message', () => process.send({ count: receiver.count, posts: receiver.posts, rejected: receiver.rejected }));
`;

interface ChildReceiver {
  url: string;
  pid: number;
  /** Spans decoded so far. */
  count(): Promise<number>;
  stats(): Promise<{ count: number; posts: number; rejected: number }>;
  close(): void;
}

/** How the receiver decodes: 'walk' (every field read and checked, no objects built) unless BENCH_OTEL_DECODE=spans. */
const DECODE = process.env.BENCH_OTEL_DECODE === 'spans' ? 'spans' : 'walk';

export async function childReceiver(answer: 'ok' | 'never'): Promise<ChildReceiver> {
  const child = fork('--input-type=module', ['-e', RECEIVER_CHILD], { execArgv: ['--import', 'tsx'], env: { ...process.env, ANSWER: answer, DECODE }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the receiver process did not start within 20 s')), 20_000);
    child.once('message', (message) => {
      clearTimeout(timer);
      resolve(String(message));
    });
    child.once('exit', (code) => reject(new Error(`the receiver process exited (${code})`)));
  });
  const stats = (): Promise<{ count: number; posts: number; rejected: number }> =>
    new Promise((resolve) => {
      child.once('message', (message) => resolve(message as { count: number; posts: number; rejected: number }));
      child.send('stats');
    });
  return {
    url,
    pid: child.pid!,
    stats,
    count: async () => (await stats()).count,
    close: () => child.kill('SIGKILL'),
  };
}
