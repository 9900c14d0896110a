import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Every token starts with this, so secret scanners and humans recognise a leaked one. */
export const TOKEN_PREFIX = 'tnm_';

/** `tnm_` + 32 random bytes in base64url (43 characters, no padding). */
const TOKEN_PATTERN = /^tnm_[A-Za-z0-9_-]{43}$/;

/** A new secret: 256 bits from the OS CSPRNG. */
export function generateToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

/** Whether `value` has the shape of one of our tokens (checked before touching the database). */
export function isTokenShaped(value: string): boolean {
  return TOKEN_PATTERN.test(value);
}

/**
 * What the database keeps instead of the secret. A plain SHA-256 is the right tool here, unlike for passwords:
 * slow, salted hashes (bcrypt, scrypt, argon2) exist to make guessing low-entropy secrets expensive, but a
 * 256-bit random token cannot be guessed or brute-forced from its hash at any speed, and SHA-256 is
 * preimage-resistant. A fast, unsalted hash also lets us look a token up by its hash in one indexed query.
 */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * Constant-time comparison of two hex hashes. The row was already found by its hash, so this is defence in
 * depth: it keeps the final accept/reject decision free of data-dependent timing whatever the index does.
 */
export function sameHash(a: string, b: string): boolean {
  const left = Buffer.from(a, 'hex');
  const right = Buffer.from(b, 'hex');
  return left.length === right.length && left.length > 0 && timingSafeEqual(left, right);
}

/** A short public id for a token: safe to show, log and put in URLs (it reveals nothing about the secret). */
export function generateId(): string {
  return `tok_${randomBytes(8).toString('hex')}`;
}
