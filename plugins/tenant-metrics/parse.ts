/**
 * A strict, bounded parser of the Prometheus text exposition format (version 0.0.4) for what a tenant serves on
 * its metrics path. The tenant is not trusted: every size is capped, names and values are checked the way
 * Prometheus' own parser checks them, and a syntax error rejects the whole body (as a Prometheus scrape does)
 * instead of keeping a guess. Samples that are well formed but unwanted (over the series cap, repeated, with a
 * reserved label) are dropped one by one and counted.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface ParsedSample {
  /** The sample's own name (`foo_bucket` in histogram `foo`), as the tenant wrote it. */
  name: string;
  /** Label pairs sorted by name; `service` and `instance` already renamed (see below). */
  labels: ReadonlyArray<readonly [string, string]>;
  value: number;
}

export interface ParsedFamily {
  name: string;
  type: MetricType;
  help: string | null;
  samples: ParsedSample[];
}

export interface ParseLimits {
  /** Samples kept; further well-formed samples are dropped and counted as `limit`. */
  maxSeries: number;
  maxLineLength: number;
  maxNameLength: number;
  maxLabels: number;
  maxLabelNameLength: number;
  maxLabelValueLength: number;
  maxHelpLength: number;
}

export const DEFAULT_LIMITS: ParseLimits = {
  maxSeries: 1000,
  maxLineLength: 32_768,
  maxNameLength: 200,
  maxLabels: 30,
  maxLabelNameLength: 100,
  maxLabelValueLength: 1024,
  maxHelpLength: 1024,
};

/** Why a sample was dropped. */
export type DropReason = 'limit' | 'duplicate' | 'invalid';

export interface ParseResult {
  families: ParsedFamily[];
  /** Samples kept, over all families. */
  series: number;
  dropped: Record<DropReason, number>;
}

/** A body that is not a valid exposition: nothing of it is kept. */
export class ExpositionError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(line > 0 ? `line ${line}: ${message}` : message);
  }
}

/**
 * Labels a tenant may not set as they are: Tenement adds `service` and `instance` to every sample, so a tenant's
 * own labels of those names are kept as `exported_service` and `exported_instance` (what Prometheus itself does
 * with a clashing target label), never as ours. A sample that then has two labels of one name is dropped.
 */
export const RESERVED_LABELS: ReadonlyMap<string, string> = new Map([
  ['service', 'exported_service'],
  ['instance', 'exported_instance'],
]);

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const FLOAT = /^[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])$/;
const INTEGER = /^-?\d{1,19}$/;
const TYPES: ReadonlySet<string> = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const COMMENT = /^#[ \t]+(HELP|TYPE)[ \t]+([^ \t]+)(?:[ \t]+(.*))?$/;

/** A float as Go's ParseFloat reads it in the text format (decimal, Inf, NaN; no hex); undefined when not one. */
export function parseValue(text: string): number | undefined {
  if (!FLOAT.test(text)) return undefined;
  const last = text.charCodeAt(text.length - 1);
  if ((last >= 0x30 && last <= 0x39) || last === 0x2e) return Number(text);
  const lower = text.toLowerCase();
  if (lower.endsWith('nan')) return NaN;
  if (lower.endsWith('inf') || lower.endsWith('infinity')) return text.startsWith('-') ? -Infinity : Infinity;
  return Number(text);
}

/** The escapes the format defines in HELP text: `\\` and `\n`; any other backslash stays as written. */
function unescapeHelp(text: string): string {
  return text.replace(/\\([\\n])/g, (_, c: string) => (c === 'n' ? '\n' : '\\'));
}

interface FamilyBuilder extends ParsedFamily {
  typed: boolean;
}

const SUFFIXES = ['_bucket', '_sum', '_count'] as const;

/**
 * A copy of a kept string that does not point into the body: V8 makes a slice of 13 or more characters a view of
 * its parent, and one kept label value would otherwise hold the whole decoded body (megabytes) until the next
 * scrape replaces it. Only kept strings are copied (at most maxSeries samples' worth).
 */
function detach(text: string): string {
  return text.length < 13 ? text : Buffer.from(text, 'utf8').toString('utf8');
}

function skipBlanks(line: string, i: number): number {
  let c = line.charCodeAt(i);
  while (c === 0x20 || c === 0x09) c = line.charCodeAt(++i);
  return i;
}

class Parser {
  private readonly families = new Map<string, FamilyBuilder>();
  private readonly seen = new Set<string>();
  private series = 0;
  private readonly dropped: Record<DropReason, number> = { limit: 0, duplicate: 0, invalid: 0 };
  private lineNo = 0;

  constructor(private readonly limits: ParseLimits) {}

  fail(message: string): never {
    throw new ExpositionError(this.lineNo, message);
  }

  private start = 0;

  /** Parses up to `lines` more lines; true when the text is done. */
  step(text: string, lines: number): boolean {
    for (let k = 0; k < lines && this.start < text.length; k++) {
      let end = text.indexOf('\n', this.start);
      if (end < 0) end = text.length;
      this.lineNo++;
      if (end - this.start > this.limits.maxLineLength) this.fail(`line longer than ${this.limits.maxLineLength} characters`);
      this.line(text.slice(this.start, end));
      this.start = end + 1;
    }
    return this.start >= text.length;
  }

  result(): ParseResult {
    const families = [...this.families.values()]
      .filter((f) => f.samples.length > 0)
      .map(({ name, type, help, samples }) => ({ name, type, help, samples }));
    return { families, series: this.series, dropped: this.dropped };
  }

  private line(line: string): void {
    const first = line.charCodeAt(0);
    if (first === 0x23) return this.comment(line); // '#'
    if ((line.length === 0 || first === 0x20 || first === 0x09) && /^[ \t]*$/.test(line)) return;
    this.sample(line);
  }

  private checkName(name: string): void {
    if (name.length > this.limits.maxNameLength) this.fail(`metric name longer than ${this.limits.maxNameLength} characters`);
    if (!METRIC_NAME.test(name)) this.fail(`invalid metric name ${JSON.stringify(name.slice(0, 80))}`);
  }

  private comment(line: string): void {
    const match = COMMENT.exec(line);
    if (!match) return; // any other comment is allowed and ignored
    const [, keyword, name, rest = ''] = match as unknown as [string, 'HELP' | 'TYPE', string, string | undefined];
    this.checkName(name);
    const family = this.families.get(name);
    if (family && family.samples.length > 0) this.fail(`${keyword} for ${name} after its samples`);
    const target = family ?? this.create(name);
    if (keyword === 'TYPE') {
      const type = rest.trim();
      if (!TYPES.has(type)) this.fail(`unknown metric type ${JSON.stringify(type.slice(0, 40))}`);
      if (target.typed) this.fail(`second TYPE line for ${name}`);
      target.type = type as MetricType;
      target.typed = true;
    } else {
      if (target.help !== null) this.fail(`second HELP line for ${name}`);
      // A HELP too long to carry is left out rather than cut: a cut escape would change its meaning.
      target.help = rest.length > this.limits.maxHelpLength ? '' : detach(unescapeHelp(rest));
    }
  }

  private create(name: string): FamilyBuilder {
    const family: FamilyBuilder = { name: detach(name), type: 'untyped', help: null, samples: [], typed: false };
    this.families.set(name, family);
    return family;
  }

  /** The family a sample belongs to: its own name, or a histogram's/summary's base for the reserved suffixes. */
  private familyOf(name: string): { family: FamilyBuilder; suffix: (typeof SUFFIXES)[number] | null } {
    const own = this.families.get(name);
    if (own) return { family: own, suffix: null };
    for (const suffix of SUFFIXES) {
      if (!name.endsWith(suffix)) continue;
      const base = this.families.get(name.slice(0, -suffix.length));
      if (base && (base.type === 'histogram' || (base.type === 'summary' && suffix !== '_bucket'))) return { family: base, suffix };
    }
    return { family: this.create(name), suffix: null };
  }

  private sample(line: string): void {
    let i = 0;
    const n = line.length;
    i = skipBlanks(line, i);
    const nameStart = i;
    while (i < n && line[i] !== '{' && line[i] !== ' ' && line[i] !== '\t') i++;
    const name = line.slice(nameStart, i);
    this.checkName(name);
    i = skipBlanks(line, i);
    const labels: Array<[string, string]> = [];
    if (line[i] === '{') {
      i++;
      i = skipBlanks(line, i);
      while (i < n && line[i] !== '}') {
        const labelStart = i;
        while (i < n && line[i] !== '=' && line[i] !== ' ' && line[i] !== '\t') i++;
        const label = line.slice(labelStart, i);
        if (!LABEL_NAME.test(label)) this.fail(`invalid label name ${JSON.stringify(label.slice(0, 80))}`);
        i = skipBlanks(line, i);
        if (line[i] !== '=') this.fail(`expected '=' after label ${label}`);
        i++;
        i = skipBlanks(line, i);
        if (line[i] !== '"') this.fail(`expected '"' to open the value of label ${label}`);
        i++;
        // Most values have no escape: find the closing quote and slice; unescape only when there is one.
        const valueStart = i;
        let escaped = false;
        while (i < n) {
          const c = line.charCodeAt(i);
          if (c === 0x22) break;
          if (c === 0x5c) {
            escaped = true;
            i++;
          }
          i++;
        }
        if (i >= n) this.fail(`unterminated value of label ${label}`);
        const value = escaped ? this.unescapeLabel(line.slice(valueStart, i), label) : line.slice(valueStart, i);
        i++;
        if (labels.some(([l]) => l === label)) this.fail(`label ${label} repeated`);
        labels.push([label, value]);
        i = skipBlanks(line, i);
        if (line[i] === ',') {
          i++;
          i = skipBlanks(line, i);
        } else if (line[i] !== '}') this.fail("expected ',' or '}' after a label");
      }
      if (line[i] !== '}') this.fail('unterminated label set');
      i++;
      i = skipBlanks(line, i);
    }
    const valueStart = i;
    while (i < n && line[i] !== ' ' && line[i] !== '\t') i++;
    const value = parseValue(line.slice(valueStart, i));
    if (value === undefined) this.fail(`expected a float value for ${name}, got ${JSON.stringify(line.slice(valueStart, i).slice(0, 40))}`);
    i = skipBlanks(line, i);
    if (i < n) {
      const tsStart = i;
      while (i < n && line[i] !== ' ' && line[i] !== '\t') i++;
      // A timestamp is read and left out: the sample is re-exposed as of Tenement's own scrape.
      if (!INTEGER.test(line.slice(tsStart, i))) this.fail(`expected an integer timestamp for ${name}`);
      i = skipBlanks(line, i);
      if (i < n) this.fail(`unexpected text after the sample of ${name}`);
    }

    const { family, suffix } = this.familyOf(name);
    if (family.type === 'histogram') {
      if (suffix === null) this.fail(`histogram ${family.name} has a sample without _bucket, _sum or _count: ${name}`);
      if (suffix === '_bucket' && !labels.some(([l, v]) => l === 'le' && parseValue(v) !== undefined)) this.fail(`${name} needs a float le label`);
    } else if (family.type === 'summary' && suffix === null) {
      if (!labels.some(([l, v]) => l === 'quantile' && parseValue(v) !== undefined)) this.fail(`${name} needs a float quantile label`);
    }
    this.keep(family, name, labels, value);
  }

  private unescapeLabel(raw: string, label: string): string {
    return raw.replace(/\\(.)/g, (_, c: string) => {
      if (c === '\\') return '\\';
      if (c === '"') return '"';
      if (c === 'n') return '\n';
      return this.fail(`invalid escape in the value of label ${label}`);
    });
  }

  private keep(family: FamilyBuilder, name: string, raw: Array<[string, string]>, value: number): void {
    const { limits } = this;
    // Past the cap nothing more is kept, whatever the sample: only its syntax (checked above) still matters.
    if (this.series >= limits.maxSeries) {
      this.dropped.limit++;
      return;
    }
    if (raw.length > limits.maxLabels || raw.some(([l, v]) => l.length > limits.maxLabelNameLength || v.length > limits.maxLabelValueLength)) {
      this.dropped.invalid++;
      return;
    }
    const labels: Array<[string, string]> = [];
    for (const [label, v] of raw) {
      // `__`-prefixed names are Prometheus' own (`__name__`, `__address__`...), and `__proto__` is one of them.
      if (label.startsWith('__')) {
        this.dropped.invalid++;
        return;
      }
      labels.push([RESERVED_LABELS.get(label) ?? detach(label), detach(v)]);
    }
    labels.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (let k = 1; k < labels.length; k++) {
      if (labels[k]![0] === labels[k - 1]![0]) {
        this.dropped.invalid++;
        return;
      }
    }
    let key = name;
    for (const [l, v] of labels) key += `\u0000${l}\u0000${v}`;
    if (this.seen.has(key)) {
      this.dropped.duplicate++;
      return;
    }
    this.seen.add(key);
    this.series++;
    family.samples.push({ name: name === family.name ? family.name : detach(name), labels, value });
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decode(body: Uint8Array): string {
  try {
    return utf8.decode(body);
  } catch {
    throw new ExpositionError(0, 'the body is not valid UTF-8');
  }
}

/** Parses a whole body. Throws ExpositionError when it is not valid UTF-8 or not a valid exposition. */
export function parseExposition(body: Uint8Array, limits: ParseLimits = DEFAULT_LIMITS): ParseResult {
  const text = decode(body);
  const parser = new Parser(limits);
  parser.step(text, Infinity);
  return parser.result();
}

/** Lines parsed between two turns of the event loop: a big body never holds up Tenement's own requests long. */
const LINES_PER_TURN = 2_000;

/** parseExposition in slices, giving the event loop back between them. */
export async function parseExpositionAsync(body: Uint8Array, limits: ParseLimits = DEFAULT_LIMITS): Promise<ParseResult> {
  const text = decode(body);
  const parser = new Parser(limits);
  while (!parser.step(text, LINES_PER_TURN)) await new Promise<void>((resolve) => setImmediate(resolve));
  return parser.result();
}
