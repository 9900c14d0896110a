/**
 * The management API client behind every `ten` command that talks to a server: where the server is, which
 * token to send, JSON requests with `{ error: { code, message } }` turned into one-line errors, and SSE streams.
 */
import type { IncomingMessage } from 'node:http';
import { contextFilePath } from './context-file.ts';
import { AnswerError, AnswerTimeout, exchange } from './plain-http.ts';
import { contextOfConfigHere, currentContext, findToken, localConfig, localSocket, serverFromConfig, type TokenSource } from './server-endpoint.ts';

/**
 * What marks a CliError, whichever copy of this module made it: the compiled package's quick bundle (dist/cli/
 * main.js, scripts/build-quick.mjs) holds one copy, and the command modules it loads for commander import another.
 */
const CLI_ERROR = Symbol.for('tenement.CliError');

/** A failure to report as `ten: <code>: <message>`; `code` is the server's TNM_ERR_* when it sent one. */
export class CliError extends Error {
  readonly [CLI_ERROR] = true;

  /** `instanceof CliError` is true for a CliError of either copy (the brand above), as it would be with one. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as { [CLI_ERROR]?: unknown })[CLI_ERROR] === true;
  }

  constructor(
    message: string,
    readonly code: string | null = null,
    readonly status: number | null = null,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** The options every client command accepts (added by `clientOptions` in commands/common.ts). */
export interface ClientFlags {
  server?: string;
  token?: string;
  config?: string;
  json?: boolean;
}

type Query = Record<string, string | number | boolean | undefined>;

interface RequestOptions {
  query?: Query;
  body?: unknown;
  /** Milliseconds without a response before giving up. */
  timeoutMs?: number;
}

const DEFAULT_SERVER = 'http://127.0.0.1:8080';
/** Long enough for a spawn that waits for a slow start; a hung server still ends the command eventually. */
const DEFAULT_TIMEOUT_MS = 120_000;

export class Client {
  /** The local server's management API socket, preferred over TCP while it answers; null: TCP only. */
  private socket: string | null;
  /** Endpoints that did not answer, with why, for the message when none does. */
  private readonly tried: string[] = [];

  private constructor(
    readonly server: string,
    private readonly auth: TokenSource,
    socket: string | null,
    /** False when the config takes the API off TCP: a socket that fails is then the error to report. */
    private readonly tcpFallback = true,
    /** Where the endpoint came from when it is not this folder's: `the current context 'notes' (file)`. */
    private readonly origin: string | null = null,
  ) {
    this.socket = socket;
  }

  /**
   * `--server`/TENEMENT_SERVER (always TCP), else the local server's socket in its data dir when there is one,
   * else the local config's port; `--token`/TENEMENT_TOKEN, else its admin.token. With none of these (no flag, no
   * config from the cwd up, no ./tenement-data/api.sock): the current context, the server this user last started.
   */
  static async connect(flags: ClientFlags): Promise<Client> {
    const explicitServer = flags.server ?? (process.env.TENEMENT_SERVER || undefined);
    if (explicitServer === undefined && !flags.config && !process.env.TENEMENT_CONFIG && !process.env.TENEMENT_DATA_DIR) {
      const recorded = await contextOfConfigHere();
      if (recorded) return new Client(recorded.server ?? DEFAULT_SERVER, findToken(flags, null, null, recorded.tokenFile), recorded.socket, recorded.server !== null);
    }
    const needConfig = explicitServer === undefined || (!flags.token && !process.env.TENEMENT_TOKEN && !process.env.TENEMENT_DATA_DIR);
    const config = needConfig ? await localConfig(flags.config) : null;
    if (explicitServer === undefined && !config && !process.env.TENEMENT_DATA_DIR && !localSocket(null)) {
      const current = currentContext();
      if (current) {
        const { name, context } = current;
        const origin = `the current context '${name}' (${contextFilePath()})`;
        return new Client(context.server ?? DEFAULT_SERVER, findToken(flags, null, null, context.tokenFile), context.socket, context.server !== null, origin);
      }
    }
    const server = (explicitServer ?? (config ? serverFromConfig(config) : DEFAULT_SERVER)).replace(/\/+$/, '');
    let url: URL;
    try {
      url = new URL(server);
    } catch {
      throw new CliError(`--server ${server} is not a URL (expected e.g. http://127.0.0.1:8080)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new CliError(`--server ${server}: only http:// and https:// servers are supported`);
    }
    const socket = explicitServer === undefined ? localSocket(config) : null;
    return new Client(server, findToken(flags, config, socket), socket, config?.settings.api.tcp ?? true);
  }

  /** The same token toward another server over TCP (`ten ps --fleet` asks every node of a fleet). */
  withServer(server: string): Client {
    return new Client(server.replace(/\/+$/, ''), this.auth, null, true, null);
  }

  get<T>(urlPath: string, query?: Query): Promise<T> {
    return this.request<T>('GET', urlPath, { query });
  }

  post<T>(urlPath: string, body?: unknown, timeoutMs?: number): Promise<T> {
    return this.request<T>('POST', urlPath, { body: body ?? {}, timeoutMs });
  }

  put<T>(urlPath: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', urlPath, { body });
  }

  delete<T>(urlPath: string): Promise<T> {
    return this.request<T>('DELETE', urlPath, {});
  }

  /** One JSON request; any status from 400 up becomes a CliError carrying the server's code and message. */
  async request<T>(method: string, urlPath: string, options: RequestOptions = {}): Promise<T> {
    const { status, text } = await this.viaSocketFirst((socketPath) => this.answerOnce(method, urlPath, options, socketPath));
    let parsed: unknown = null;
    if (text.length > 0) {
      try {
        parsed = JSON.parse(text);
      } catch {
        if (status < 400) throw new CliError(`${method} ${urlPath}: the server answered with something that is not JSON`);
      }
    }
    if (status >= 400) throw this.failure(status, parsed, text, `${method} ${urlPath}`);
    return parsed as T;
  }

  /**
   * Follows a server-sent event stream, calling `onData` with each event's parsed `data`, until the server
   * closes it or `signal` aborts (then it resolves quietly).
   */
  async stream(urlPath: string, query: Query, onData: (data: unknown) => void, signal: AbortSignal): Promise<void> {
    const response = await this.send('GET', urlPath, { query, timeoutMs: 0 }, signal);
    const status = response.statusCode ?? 0;
    if (status >= 400) {
      const text = await readBody(response);
      let parsed: unknown = null;
      try {
        parsed = JSON.parse(text);
      } catch {
        // the fallback message below names the status
      }
      throw this.failure(status, parsed, text, `GET ${urlPath}`);
    }
    response.setEncoding('utf8');
    let buffer = '';
    await new Promise<void>((resolve, reject) => {
      signal.addEventListener('abort', () => resolve(), { once: true });
      response.on('data', (chunk: string) => {
        buffer += chunk;
        // Events end with a blank line; a partial event waits for the rest.
        let end: number;
        while ((end = buffer.search(/\r?\n\r?\n/)) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
          const data = block
            .split(/\r?\n/)
            .filter((line) => line.startsWith('data:'))
            .map((line) => line.slice(5).replace(/^ /, ''))
            .join('\n');
          if (data === '') continue; // comments and keep-alives
          try {
            onData(JSON.parse(data));
          } catch {
            onData(data);
          }
        }
      });
      response.on('end', () => resolve());
      response.on('error', (error) => (signal.aborted ? resolve() : reject(this.unreachable(error))));
    });
  }

  /** Where requests go, for messages: the socket while it is used, else the server URL. */
  get target(): string {
    return this.socket ? `unix:${this.socket}` : this.server;
  }

  /**
   * `attempt` on the local server's socket while there is one, else over TCP. A socket nobody listens on (stale)
   * or that is not ours to use (not root) falls back to the TCP listener, which may still answer.
   */
  private async viaSocketFirst<R>(attempt: (socketPath: string | null) => Promise<R>): Promise<R> {
    if (this.socket) {
      try {
        return await attempt(this.socket);
      } catch (error) {
        const code = (error as { socketCode?: string }).socketCode;
        if (!this.tcpFallback || (code !== 'ECONNREFUSED' && code !== 'ENOENT' && code !== 'EACCES')) throw error;
        this.tried.push(`unix:${this.socket} (${why(code)})`);
        this.socket = null;
      }
    }
    return attempt(null);
  }

  private send(method: string, urlPath: string, options: RequestOptions, signal?: AbortSignal): Promise<IncomingMessage> {
    return this.viaSocketFirst((socketPath) => this.sendOnce(method, urlPath, options, signal, socketPath));
  }

  private url(urlPath: string, query: Query | undefined): URL {
    const url = new URL(this.server + urlPath);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== '') url.searchParams.set(key, String(value));
    }
    return url;
  }

  private headers(payload: string | undefined): Record<string, string> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.auth.token) headers.authorization = `Bearer ${this.auth.token}`;
    if (payload !== undefined) headers['content-type'] = 'application/json';
    return headers;
  }

  /**
   * One JSON request's status and body. Over plain HTTP and the socket it is written and read with node:net
   * (cli/plain-http.ts: loading node:http was most of `ten ps`'s own start-up); HTTPS goes through node:https.
   */
  private async answerOnce(method: string, urlPath: string, options: RequestOptions, socketPath: string | null): Promise<{ status: number; text: string }> {
    const url = this.url(urlPath, options.query);
    if (url.protocol === 'https:' && !socketPath) {
      const response = await this.sendOnce(method, urlPath, options, undefined, null);
      return { status: response.statusCode ?? 0, text: await readBody(response) };
    }
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    // On the socket the management app answers whatever the Host: no routing there.
    const endpoint = socketPath ? { socketPath } : { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port || 80) };
    const request = { method, target: url.pathname + url.search, host: socketPath ? 'localhost' : url.host, headers: this.headers(payload), body: payload };
    try {
      return await exchange(endpoint, request, { timeoutMs });
    } catch (error) {
      if (error instanceof AnswerTimeout) throw new CliError(`${method} ${urlPath}: no answer from ${this.target} within ${Math.round(timeoutMs / 1000)}s`);
      if (error instanceof AnswerError) throw new CliError(`${method} ${urlPath}: ${this.target} did not answer in HTTP we can read: ${error.message}`);
      const failure = this.unreachable(error as Error);
      if (socketPath) Object.assign(failure, { socketCode: (error as NodeJS.ErrnoException).code });
      throw failure;
    }
  }

  private async sendOnce(method: string, urlPath: string, options: RequestOptions, signal: AbortSignal | undefined, socketPath: string | null): Promise<IncomingMessage> {
    const url = this.url(urlPath, options.query);
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers = this.headers(payload);
    if (payload !== undefined) headers['content-length'] = String(Buffer.byteLength(payload));
    // Loaded on use (HTTPS and event streams only): every command imports this file (for CliError).
    const transport = url.protocol === 'https:' && !socketPath ? await import('node:https') : await import('node:http');
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      // One connection per command, closed with it: nothing keeps the process alive afterwards.
      const common = { method, agent: false as const, ...(signal ? { signal } : {}) };
      // On the socket the management app answers whatever the Host: no routing there.
      const req = socketPath
        ? transport.request({ ...common, socketPath, path: url.pathname + url.search, headers: { ...headers, host: 'localhost' } }, resolve)
        : transport.request(url, { ...common, headers }, resolve);
      if (timeoutMs > 0) {
        req.setTimeout(timeoutMs, () => req.destroy(new CliError(`${method} ${urlPath}: no answer from ${this.target} within ${Math.round(timeoutMs / 1000)}s`)));
      }
      req.on('error', (error) => {
        const failure = error instanceof CliError ? error : this.unreachable(error);
        if (socketPath) Object.assign(failure, { socketCode: (error as NodeJS.ErrnoException).code });
        reject(failure);
      });
      req.end(payload);
    });
  }

  private unreachable(error: Error): CliError {
    const code = (error as NodeJS.ErrnoException).code;
    // With more than one endpoint, or one from the context file: every endpoint tried, each with why it failed.
    const tried = [...this.tried, `${this.target} (${code === 'ENOTFOUND' || code === 'EAI_AGAIN' ? 'unknown host' : why(code ?? error.message)})`];
    const detail = this.tried.length > 0 || this.origin ? ` Tried ${tried.join(', ')}${this.origin ? `, from ${this.origin}` : ''}.` : '';
    if (code === 'ECONNREFUSED' || code === 'ENOENT') return new CliError(`cannot reach the server at ${this.target}: is \`ten serve\` running?${detail}`);
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new CliError(`cannot reach the server at ${this.target}: unknown host${detail}`);
    return new CliError(`cannot reach the server at ${this.target}: ${code ?? error.message}${detail}`);
  }

  private failure(status: number, parsed: unknown, text: string, what: string): CliError {
    const body = parsed as { error?: { code?: unknown; message?: unknown } } | null;
    const code = typeof body?.error?.code === 'string' ? body.error.code : null;
    let message = typeof body?.error?.message === 'string' ? body.error.message : `${what} answered ${status}${text ? `: ${text.slice(0, 200).trim()}` : ''}`;
    if (status === 401) {
      message += this.auth.token
        ? ` (token from ${this.auth.from})`
        : `; pass --token <token> or set TENEMENT_TOKEN (${this.auth.from}; the server writes its admin token to {dataDir}/admin.token)`;
    }
    return new CliError(message.replace(/\s*\n\s*/g, ' '), code, status);
  }
}

/** Why a socket did not answer, in words. */
function why(code: string | undefined): string {
  if (code === 'ENOENT') return 'no such socket';
  if (code === 'ECONNREFUSED') return 'connection refused: nobody listening';
  if (code === 'EACCES') return 'permission denied: the server runs as another user';
  return code ?? 'failed';
}

function readBody(response: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    response.on('data', (chunk: Buffer) => chunks.push(chunk));
    response.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    response.on('error', reject);
  });
}
