/**
 * The JSON of one log line's fields, as pino writes them (core/logger.ts): each own enumerable key in order,
 * undefined values left out, an `err` that is an Error serialized as pino's standard err serializer does (type,
 * message and stack with their causes, then the error's own fields). Values JSON cannot write (a cycle, a BigInt)
 * fall back to a copy that can: a log call never throws.
 */

interface ErrorLike {
  message: string;
  stack?: string;
  cause?: unknown;
  errors?: unknown;
}

const isErrorLike = (value: unknown): value is ErrorLike => typeof value === 'object' && value !== null && typeof (value as { message?: unknown }).message === 'string';

function causeOf(error: ErrorLike): ErrorLike | undefined {
  const cause = typeof error.cause === 'function' ? (error.cause as () => unknown)() : error.cause;
  return isErrorLike(cause) ? cause : undefined;
}

function messageWithCauses(error: ErrorLike, seen: Set<ErrorLike>, skip = false): string {
  const message = skip ? '' : error.message || '';
  if (seen.has(error)) return `${message}: ...`;
  const cause = causeOf(error);
  if (!cause) return message;
  seen.add(error);
  const vErrorStyle = typeof error.cause === 'function';
  return message + (vErrorStyle ? '' : ': ') + messageWithCauses(cause, seen, vErrorStyle);
}

function stackWithCauses(error: ErrorLike, seen: Set<ErrorLike>): string {
  const stack = error.stack || '';
  if (seen.has(error)) return `${stack}\ncauses have become circular...`;
  const cause = causeOf(error);
  if (!cause) return stack;
  seen.add(error);
  return `${stack}\ncaused by: ${stackWithCauses(cause, seen)}`;
}

/** pino-std-serializers' err, for what Tenement logs: a plain object JSON writes in the same key order. */
export function serializeError(error: unknown, seen: Set<unknown> = new Set()): unknown {
  if (!isErrorLike(error)) return error;
  seen.add(error);
  const constructor = (error as { constructor?: unknown }).constructor;
  const out: Record<string, unknown> = {
    type: typeof constructor === 'function' ? constructor.name : (error as { name?: unknown }).name,
    message: messageWithCauses(error, new Set()),
    stack: stackWithCauses(error, new Set()),
  };
  if (Array.isArray(error.errors)) out.aggregateErrors = error.errors.map((one: unknown) => serializeError(one, seen));
  for (const key in error) {
    if (out[key] !== undefined) continue;
    const value = (error as unknown as Record<string, unknown>)[key];
    if (isErrorLike(value)) {
      if (key !== 'cause' && !seen.has(value)) out[key] = serializeError(value, seen);
    } else {
      out[key] = value;
    }
  }
  return out;
}

/** JSON for a value; a cycle or a BigInt JSON.stringify refuses is written as '[Circular]' or its digits. */
export function toJson(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    const stack: unknown[] = [];
    return JSON.stringify(value, function (this: unknown, _key, item: unknown) {
      if (typeof item === 'bigint') return Number(item);
      if (typeof item !== 'object' || item === null) return item;
      while (stack.length > 0 && stack.at(-1) !== this) stack.pop();
      if (stack.includes(item)) return '[Circular]';
      stack.push(item);
      return item;
    });
  }
}

/** `,"key":value` for each field, as pino appends a merging object's or a child's bindings. */
export function fieldsJson(fields: object): string {
  let out = '';
  for (const key of Object.keys(fields)) {
    const raw = (fields as Record<string, unknown>)[key];
    const json = toJson(key === 'err' ? serializeError(raw) : raw);
    if (json !== undefined) out += `,${JSON.stringify(key)}:${json}`;
  }
  return out;
}
