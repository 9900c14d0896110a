// The seeded generator of HTTP/1.1 requests and responses the framing tests share: valid messages and their
// mutations (control bytes everywhere, bare CR/LF, obs-fold, repeated and conflicting Content-Length, CL with TE,
// Transfer-Encoding variants, bad chunk sizes, extensions and trailers, absolute-form targets, two Hosts,
// Connection listing framing headers...). framing-differential.test.ts compares parsers on it; framing-edges
// sends a sample through both edges.

export class Gen {
  constructor(readonly random: () => number) {}
  int(n: number): number {
    return Math.floor(this.random() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  chance(p: number): boolean {
    return this.random() < p;
  }
  ctl(): string {
    return String.fromCharCode(this.pick([0, 1, 8, 9, 10, 11, 12, 13, 27, 31, 127, 0x85, 0xa0, 0xff]));
  }
  insert(text: string, what: string): string {
    const at = this.int(text.length + 1);
    return text.slice(0, at) + what + text.slice(at);
  }
}

const TE_VALUES = ['chunked', ' chunked', 'chunked ', 'Chunked', 'CHUNKED', 'chunked, chunked', 'identity', 'gzip, chunked', 'chunked, gzip', 'gzip', '\tchunked', 'chunked\t', 'xchunked', 'chunked;q=1', '\xa0chunked', 'chunked\x0b', '', ',chunked'];
const CL_VALUES = ['0', '3', '03', '+3', '-1', '3 3', '3,3', ' 3', '3\t', '0x3', '99999999999999999999', '', '4', '1e1', '\xa03'];
const CONNECTION_VALUES = ['content-length', 'transfer-encoding', 'host', 'close', 'keep-alive', 'Content-Length, close', 'x-private', 'TE, close', 'keep-alive, Transfer-Encoding'];
const EXTENSIONS = ['', ';a', ';a=b', ';a=b;c', ';a="b c"', ';a="b\\"c"', '; a', ';a =b', ';a=', ';=b', ';', ' ;a', ';a=\x01', ';a\nb', `;${'x'.repeat(5000)}`, '\t', ' '];
const TRAILERS = ['', 'X-Sum: 1\r\n', 'X-Sum:1\r\n', 'X-Sum : 1\r\n', ' X: 1\r\n', 'X: a\x01\r\n', 'X: a\nb\r\n', 'X\r\n', 'X: 1\n'];
const SIZES = (n: number): string[] => [n.toString(16), n.toString(16).toUpperCase(), `0${n.toString(16)}`, `${n.toString(16)} `, `${n.toString(16)}\t`, 'fffffffffffffffffff', 'x', ''];

interface Message {
  start: string;
  headers: Array<[string, string]>;
  /** Body bytes after the head, framing included (a chunked body is written out). */
  body: string;
}

function chunkedBody(g: Gen, mutate: boolean): string {
  let body = '';
  const chunks = 1 + g.int(3);
  for (let i = 0; i < chunks; i++) {
    const data = 'abcdefghij'.slice(0, 1 + g.int(10));
    const size = mutate && g.chance(0.15) ? g.pick(SIZES(data.length)) : data.length.toString(16);
    const ext = mutate && g.chance(0.2) ? g.pick(EXTENSIONS) : g.chance(0.1) ? ';n=v' : '';
    const eol = mutate && g.chance(0.05) ? g.pick(['\n', '\r', '']) : '\r\n';
    body += `${size}${ext}\r\n${data}${eol}`;
  }
  const trailer = mutate && g.chance(0.3) ? g.pick(TRAILERS) : g.chance(0.1) ? 'X-Sum: 1\r\n' : '';
  return `${body}0\r\n${trailer}\r\n`;
}

function serialize(m: Message, g: Gen, mutateBytes: boolean): Buffer {
  let text = `${m.start}\r\n`;
  for (const [name, value] of m.headers) text += `${name}:${g.chance(0.9) ? ' ' : ''}${value}\r\n`;
  text += '\r\n';
  if (mutateBytes) {
    for (let n = g.int(3); n > 0; n--) {
      const headEnd = text.length - 2;
      const at = g.int(headEnd);
      switch (g.int(5)) {
        case 0:
          text = text.slice(0, at) + g.ctl() + text.slice(at + 1);
          break;
        case 1: {
          const crlf = text.indexOf('\r\n', at);
          if (crlf !== -1 && crlf < headEnd) text = text.slice(0, crlf) + g.pick(['\n', '\r', '\r\n ', '\r\n\t']) + text.slice(crlf + 2);
          break;
        }
        case 2:
          text = text.slice(0, at) + g.ctl() + text.slice(at);
          break;
        case 3:
          text = text.slice(0, at) + text.slice(at + 1);
          break;
        case 4:
          text = text.slice(0, at) + String.fromCharCode(g.int(256)) + text.slice(at + 1);
          break;
      }
    }
  }
  return Buffer.from(text + m.body, 'latin1');
}

/** A message's framing: none (`otherwise` as the body), Content-Length over `filler`, or a chunked body. */
function frameBody(g: Gen, headers: Array<[string, string]>, filler: string, otherwise: string): { framing: number; body: string } {
  const framing = g.int(3);
  if (framing === 1) {
    const body = filler.repeat(1 + g.int(3));
    headers.push(['Content-Length', String(body.length)]);
    return { framing, body };
  }
  if (framing === 2) {
    headers.push(['Transfer-Encoding', 'chunked']);
    return { framing, body: chunkedBody(g, g.chance(0.5)) };
  }
  return { framing, body: otherwise };
}

/** The framing header the message got (the last one) takes a mutated value instead. */
function remangleFraming(g: Gen, headers: Array<[string, string]>, framing: number): void {
  if (framing === 2) headers[headers.length - 1] = ['Transfer-Encoding', g.pick(TE_VALUES)];
  else if (framing === 1) headers[headers.length - 1] = ['Content-Length', g.pick(CL_VALUES)];
}

/** A control byte somewhere in one header's value. */
function insertControl(g: Gen, headers: Array<[string, string]>): void {
  const i = g.int(headers.length);
  headers[i] = [headers[i]![0], g.insert(headers[i]![1], g.ctl())];
}

/** One header's value continued on an obs-fold line. */
function foldValue(g: Gen, headers: Array<[string, string]>, continuations: readonly string[]): void {
  const i = g.int(headers.length);
  headers[i] = [headers[i]![0], `${headers[i]![1]}\r\n ${g.pick(continuations)}`];
}

export function generateRequest(g: Gen): Buffer {
  const host = g.pick(['a.notes.localhost', 'b.notes.localhost:8080', 'NOTES.localhost', '[::1]:80']);
  let method = g.pick(['GET', 'GET', 'POST', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);
  let target = g.pick(['/', '/notes?x=1', '/a/b%20c', '/api/v1/items?q=a&b=c#frag', '//double', '/x?y=%00']);
  let version = 'HTTP/1.1';
  const headers: Array<[string, string]> = [['Host', host], ['User-Agent', 'corpus/1'], ['Accept', '*/*']];
  const { framing, body } = frameBody(g, headers, 'abc', '');
  const mutations = g.int(4);
  for (let i = 0; i < mutations; i++) {
    switch (g.int(12)) {
      case 0:
        headers.push(['Transfer-Encoding', g.pick(TE_VALUES)]);
        break;
      case 1:
        headers.push(['Content-Length', g.pick(CL_VALUES)]);
        break;
      case 2:
        remangleFraming(g, headers, framing);
        break;
      case 3:
        headers.push(['Host', g.pick([host, 'other.localhost', ''])]);
        break;
      case 4:
        headers.push(['Connection', g.pick(CONNECTION_VALUES)]);
        break;
      case 5:
        target = g.pick([`http://${host}/x`, `HTTP://${host.toUpperCase()}/x`, 'http://other.localhost/x', `https://${host}`, '*', 'notes', 'other.localhost:443', '/a b', '/\x01', '/é', '/a\tb']);
        break;
      case 6:
        [method, version] = g.pick([['get', version], ['FOO', version], ['M-SEARCH', version], [method, 'HTTP/1.0'], [method, 'HTTP/1.2'], [method, 'HTTP/2.0'], [method, 'http/1.1'], ['CONNECT', version], [`${method} `, version]]) as [string, string];
        break;
      case 7: {
        const i2 = g.int(headers.length);
        headers[i2] = [g.pick([`${headers[i2]![0]} `, ` ${headers[i2]![0]}`, '', `${headers[i2]![0]}\x01`, 'Bad Name', 'X"y']), headers[i2]![1]];
        break;
      }
      case 8:
        insertControl(g, headers);
        break;
      case 9:
        foldValue(g, headers, ['folded', 'chunked', 'Transfer-Encoding: chunked']);
        break;
      case 10:
        headers.push(['X-A', `a\n${g.pick(['Transfer-Encoding: chunked', 'Content-Length: 0', 'X-B: b'])}`]);
        break;
      case 11:
        headers.splice(g.int(headers.length + 1), 0, [g.pick(['Expect', 'Upgrade', 'TE', 'Trailer', 'Keep-Alive', 'Proxy-Connection']), g.pick(['100-continue', 'websocket', 'trailers', 'x', 'timeout=5'])]);
        break;
    }
  }
  return serialize({ start: `${method} ${target} ${version}`, headers, body }, g, g.chance(0.3));
}

export function generateResponse(g: Gen, method: string): Buffer {
  const status = g.pick(['200 OK', '200 OK', '201 Created', '204 No Content', '304 Not Modified', '404 Not Found', '500 Oops', '200', '200 ']);
  // A body after a bodiless response is bytes the upstream should not have sent: the fast path forwards none of
  // them and drops the connection (tested in the e2e suite); here bodiless responses come without one.
  const bodiless = method === 'HEAD' || status.startsWith('204') || status.startsWith('304');
  let start = `HTTP/1.1 ${status}`;
  const headers: Array<[string, string]> = [['Content-Type', 'text/plain'], ['Set-Cookie', 'a=1']];
  const framed = frameBody(g, headers, 'xyz', 'until close');
  const { framing } = framed;
  const body = bodiless ? '' : framed.body;
  const mutations = g.int(4);
  for (let i = 0; i < mutations; i++) {
    switch (g.int(9)) {
      case 0:
        headers.push(['Transfer-Encoding', g.pick(TE_VALUES)]);
        break;
      case 1:
        headers.push(['Content-Length', g.pick(CL_VALUES)]);
        break;
      case 2:
        remangleFraming(g, headers, framing);
        break;
      case 3:
        headers.push(['Connection', g.pick(CONNECTION_VALUES)]);
        break;
      case 4:
        start = g.pick(['HTTP/1.1 2000 OK', 'HTTP/1.1 20 OK', 'HTTP/1.2 200 OK', 'HTTP/1.0 200 OK', 'HTTP/2 200 OK', 'HTTP/1.1 200 O\x01K', 'HTTP/1.1  200 OK', 'http/1.1 200 OK', 'HTTP/1.1 101 Switching']);
        break;
      case 5:
        insertControl(g, headers);
        break;
      case 6:
        foldValue(g, headers, ['folded', 'chunked']);
        break;
      case 7:
        headers.push(['X-A', `a\n${g.pick(['Transfer-Encoding: chunked', 'Content-Length: 0'])}`]);
        break;
      case 8:
        start = `HTTP/1.1 100 Continue\r\n\r\n${start}`;
        break;
    }
  }
  return serialize({ start, headers, body }, g, g.chance(0.3));
}
