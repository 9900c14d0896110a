// Every call the dashboard makes goes through here: same-origin fetch with the session cookie, the CSRF token on
// mutating requests, and a coded error (the API's `{ error: { code, message } }`) when the answer is not 2xx.

let csrfToken = '';

export function setCsrf(token: string): void {
  csrfToken = token;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

interface ErrorBody {
  error?: { code?: unknown; message?: unknown };
}

function errorOf(status: number, data: unknown, text: string): ApiError {
  const error = (data as ErrorBody | null)?.error;
  const code = typeof error?.code === 'string' ? error.code : `HTTP_${status}`;
  const message = typeof error?.message === 'string' ? error.message : text || `HTTP ${status}`;
  return new ApiError(status, code, message);
}

/** Called when any answer is a 401: the session ended (expired, revoked, signed out elsewhere). */
let onUnauthorized: () => void = () => {};
export function whenUnauthorized(handler: () => void): void {
  onUnauthorized = handler;
}

export async function api<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET') headers['x-csrf-token'] = csrfToken;
  const init: RequestInit = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(path, init);
  const text = await res.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const error = errorOf(res.status, data, text);
    if (res.status === 401 && path !== '/api/session') onUnauthorized();
    throw error;
  }
  return data as T;
}

/** A path segment for a service, id or token id: names are DNS labels, but nothing typed is trusted. */
export const seg = (value: string): string => encodeURIComponent(value);

export const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));
