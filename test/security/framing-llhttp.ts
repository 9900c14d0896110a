// Node's own HTTP/1.1 parser (llhttp, strict as node:http runs it), driven synchronously on a byte buffer:
// the reference the data plane's framing is compared with.
import { createRequire } from 'node:module';
interface ParserBinding {
  new (): Parser;
  REQUEST: number;
  RESPONSE: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kOnExecute: number;
}
interface Parser {
  [key: number]: unknown;
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | Error;
  finish(): number | Error | undefined;
  close(): void;
}

// node:_http_common re-exports the binding node:http itself parses with (the same HTTPParser and method table that
// process.binding('http_parser') gave, which Node 24 removed): the only way to reach llhttp synchronously.
const { HTTPParser, methods } = createRequire(import.meta.url)('_http_common') as { HTTPParser: ParserBinding; methods: string[] };

export interface LlMessage {
  method: string;
  url: string;
  status: number;
  headers: string[];
  body: Buffer;
  upgrade: boolean;
  keepAlive: boolean;
  complete: boolean;
}

export interface LlResult {
  /** Set when llhttp refused the bytes (code and reason). */
  error: string | null;
  messages: LlMessage[];
}

/**
 * Parses `data` as a stream of requests or responses; `eof` tells the parser the connection then closed;
 * `headResponse`: the first final response answers a HEAD.
 */
export function llhttpParse(kind: 'request' | 'response', data: Buffer, eof = false, headResponse = false): LlResult {
  const parser = new HTTPParser();
  const messages: LlMessage[] = [];
  let pendingHeaders: string[] = [];
  let pendingUrl = '';
  let current: { m: LlMessage; chunks: Buffer[] } | null = null;
  let headAnswered = false;
  parser[HTTPParser.kOnHeaders] = (headers: string[], url: string) => {
    pendingHeaders.push(...headers);
    pendingUrl += url;
  };
  parser[HTTPParser.kOnHeadersComplete] = (
    _major: number, _minor: number, headers: string[] | undefined, method: number, url: string | undefined,
    status: number, _message: string, upgrade: boolean, keepAlive: boolean,
  ) => {
    const m: LlMessage = {
      method: kind === 'request' ? methods[method]! : '',
      url: pendingUrl + (url ?? ''),
      status,
      headers: [...pendingHeaders, ...(headers ?? [])],
      body: Buffer.alloc(0),
      upgrade,
      keepAlive,
      complete: false,
    };
    pendingHeaders = [];
    pendingUrl = '';
    current = { m, chunks: [] };
    messages.push(m);
    // A response to HEAD has no body; the messages after it (other requests' answers) do.
    if (!headResponse || status < 200 || headAnswered) return 0;
    headAnswered = true;
    return 1;
  };
  parser[HTTPParser.kOnBody] = (chunk: Buffer) => {
    current?.chunks.push(Buffer.from(chunk));
  };
  parser[HTTPParser.kOnMessageComplete] = () => {
    // Trailer fields arrive through kOnHeaders: they belong to the message that just ended.
    pendingHeaders = [];
    pendingUrl = '';
    if (!current) return;
    current.m.body = Buffer.concat(current.chunks);
    current.m.complete = true;
    current = null;
  };
  parser[HTTPParser.kOnExecute] = () => undefined;
  parser.initialize(kind === 'request' ? HTTPParser.REQUEST : HTTPParser.RESPONSE, {}, 0, 0);
  let error: string | null = null;
  const result = parser.execute(data);
  if (result instanceof Error) error = `${(result as NodeJS.ErrnoException).code}: ${(result as Error & { reason?: string }).reason ?? ''}`;
  else if (eof) {
    const end = parser.finish();
    if (end instanceof Error) error = `${(end as NodeJS.ErrnoException).code}`;
  }
  const open = current as { m: LlMessage; chunks: Buffer[] } | null;
  if (open && !open.m.complete) open.m.body = Buffer.concat(open.chunks);
  parser.close();
  return { error, messages };
}
