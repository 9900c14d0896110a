/**
 * One delivery attempt: a POST that a hostile or broken receiver cannot stretch. The whole exchange has one
 * deadline, redirects are never followed (a 3xx is a failed attempt naming where it pointed), at most
 * `maxBodyBytes` of the answer are read (for the error line) before the socket is dropped, and no connection is
 * kept for reuse.
 */
import http from 'node:http';

export interface SendResult {
  ok: boolean;
  /** The receiver's status, or null when none came (refused, reset, timed out). */
  status: number | null;
  /** Why it failed, for `ten alerts`; null on success. */
  error: string | null;
}

export interface SendOptions {
  timeoutMs: number;
  maxBodyBytes?: number;
}

/** Printable text of a response body, for the error line. */
function excerpt(body: Buffer): string {
  const text = body.toString('utf8').replace(/[^\x20-\x7e]+/g, ' ').trim();
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

export async function send(target: string, body: string, headers: Record<string, string>, options: SendOptions): Promise<SendResult> {
  const url = new URL(target);
  // https (and tls under it) loaded by the first https delivery: a server without https webhooks never holds them.
  const transport = url.protocol === 'https:' ? (await import('node:https')).default : http;
  const maxBody = options.maxBodyBytes ?? 4096;
  const payload = Buffer.from(body, 'utf8');
  return new Promise<SendResult>((resolve) => {
    let settled = false;
    const finish = (result: SendResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      request.destroy();
      resolve(result);
    };
    const request = transport.request(url, {
      method: 'POST',
      agent: false,
      headers: { ...headers, 'content-type': 'application/json', 'content-length': String(payload.length), connection: 'close' },
    });
    const deadline = setTimeout(() => finish({ ok: false, status: null, error: `no complete answer within ${options.timeoutMs}ms` }), options.timeoutMs);
    request.on('error', (error: NodeJS.ErrnoException) => finish({ ok: false, status: null, error: error.code ? `${error.code}: ${error.message}` : error.message }));
    request.on('response', (response) => {
      const status = response.statusCode ?? 0;
      const chunks: Buffer[] = [];
      let size = 0;
      const done = (): void => {
        const text = excerpt(Buffer.concat(chunks));
        if (status >= 200 && status < 300) return finish({ ok: true, status, error: null });
        if (status >= 300 && status < 400) {
          const location = String(response.headers.location ?? '').slice(0, 200);
          return finish({ ok: false, status, error: `redirect${location ? ` to ${location}` : ''} not followed: set the webhook's url to the final address` });
        }
        finish({ ok: false, status, error: `answered ${status}${text ? `: ${text}` : ''}` });
      };
      response.on('data', (chunk: Buffer) => {
        if (size < maxBody) chunks.push(chunk.subarray(0, maxBody - size));
        size += chunk.length;
        // Enough to judge and report: the rest of a huge body is never read.
        if (size >= maxBody) done();
      });
      response.on('end', done);
      response.on('error', () => done());
    });
    request.end(payload);
  });
}
