/**
 * KV key encoding. NATS KV keys are dot-separated tokens of `[-/_=.A-Za-z0-9]` where `*` and `>` are wildcards;
 * a name is made a single safe token by keeping `[A-Za-z0-9-]` and writing every other byte of its UTF-8 form as
 * `_xx` (lowercase hex), `_` itself included. The encoding is injective and never yields `.`, `*`, `>` or an
 * empty token, so `__proto__`, `a.b` or `>` can neither collide with another name nor reach another key.
 */

const KEEP = /^[A-Za-z0-9-]$/;

export function encodeToken(name: string): string {
  if (name.length === 0) return '_';
  let out = '';
  for (const char of name) {
    if (KEEP.test(char)) out += char;
    else for (const byte of Buffer.from(char, 'utf8')) out += `_${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** The inverse of encodeToken; null for a token encodeToken could not have produced. */
export function decodeToken(token: string): string | null {
  if (token === '_') return '';
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    const char = token[i]!;
    if (char === '_') {
      const hex = token.slice(i + 1, i + 3);
      if (!/^[0-9a-f]{2}$/.test(hex)) return null;
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else if (KEEP.test(char)) bytes.push(char.charCodeAt(0));
    else return null;
  }
  const name = Buffer.from(bytes).toString('utf8');
  return encodeToken(name) === token ? name : null;
}

/** `tenement_placements` key of an instance: `<service>.<id>`, each encoded. */
export function placementKey(service: string, id: string): string {
  return `${encodeToken(service)}.${encodeToken(id)}`;
}

export function parsePlacementKey(key: string): { service: string; id: string } | null {
  const parts = key.split('.');
  if (parts.length !== 2) return null;
  const service = decodeToken(parts[0]!);
  const id = decodeToken(parts[1]!);
  return service === null || id === null ? null : { service, id };
}

/** In-memory map key of an instance (never a KV key): NUL cannot occur in either name. */
export function instanceKey(service: string, id: string): string {
  return `${service}\0${id}`;
}
