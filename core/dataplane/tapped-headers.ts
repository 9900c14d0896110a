/**
 * What an `upstreamHeaders` tap may put into a request head. The kernel writes the tap's pairs into the head it
 * sends to the instance byte for byte, so a value with CR or LF in it would end the header line early and let a
 * plugin bug (or a value it copied from a client) start a header, or a whole request, of its own: the framing
 * the strict parser guarantees on the way in must hold on the way out. Plugins are trusted code, so a bad pair is
 * the plugin's fault: it is dropped and reported against the plugin (hooks.ts), never sent.
 */

/** RFC 9110 §5.6.2 token: a field name. */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** RFC 9110 §5.5 field-value characters: visible ASCII, obs-text, space and tab; no CR, LF, NUL or other controls. */
export const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Names a tap may not declare it adds (`TapOptions.adds`): they decide how the instance frames the request or
 * the connection, or which site it is for, and the kernel sets them itself.
 */
const FRAMING_NAMES: ReadonlySet<string> = new Set([
  'content-length',
  'transfer-encoding',
  'host',
  'connection',
  'keep-alive',
  'proxy-connection',
  'upgrade',
  'te',
  'trailer',
]);

/** Why `adds` cannot be accepted, or null when every name is a token the kernel does not set itself. */
export function addsProblem(adds: readonly string[]): string | null {
  for (const name of adds) {
    if (typeof name !== 'string' || !TOKEN.test(name)) return `adds: ${JSON.stringify(name)} is not a header name`;
    if (FRAMING_NAMES.has(name.toLowerCase())) return `adds: ${name} is set by the kernel (it frames the request), not by a plugin`;
  }
  return null;
}

/**
 * Drops, in place, every pair of the flat name/value list that could not be written as one header line; returns
 * a description of the first one dropped (for the plugin's fault), or null when all were fine.
 */
export function dropUnwritablePairs(headers: string[]): string | null {
  let problem: string | null = null;
  let kept = 0;
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const name = headers[i];
    const value = headers[i + 1];
    const fault =
      typeof name !== 'string' || !TOKEN.test(name)
        ? `a header name ${JSON.stringify(String(name)).slice(0, 80)} is not a token`
        : typeof value !== 'string' || !FIELD_VALUE.test(value)
          ? `the value of ${name} has characters a header line cannot carry (CR, LF, NUL or another control)`
          : null;
    if (fault !== null) {
      problem ??= fault;
      continue;
    }
    if (kept !== i) {
      headers[kept] = name as string;
      headers[kept + 1] = value as string;
    }
    kept += 2;
  }
  // An odd length (a name without a value) is a fault too: the last name would otherwise pair with nothing.
  if (headers.length % 2 === 1) problem ??= `the header list has an odd length (${headers.length}): a name without a value`;
  if (kept !== headers.length) headers.length = kept;
  return problem;
}
