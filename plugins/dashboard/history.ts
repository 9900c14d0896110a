/**
 * The charts' data, per instance: a rolling window of STEP_MS buckets (the last hour), in one typed array per
 * instance so 1,000 instances cost about 9 MB and no garbage (see `bytesPerInstance`).
 */
export const STEP_MS = 10_000;
export const POINTS = 360;

/** Latency histogram of the bucket in progress: bounds 0.1 ms × 1.25^i, so a percentile is within ~12%. */
const HIST_BUCKETS = 64;
const HIST_BASE_MS = 0.1;
const HIST_RATIO = 1.25;
const LOG_RATIO = Math.log(HIST_RATIO);

/** Fields of a point, one Float32 each, in this order in the ring. */
const COUNT = 0;
const P50 = 1;
const P95 = 2;
const P99 = 3;
const MEMORY = 4;
const CPU = 5;
const FIELDS = 6;

export interface HistoryPoint {
  t: number;
  rps: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  memory: number | null;
  cpu: number | null;
}

export const slotOf = (now: number): number => Math.floor(now / STEP_MS);

function bucketOf(ms: number): number {
  if (!(ms > HIST_BASE_MS)) return 0;
  return Math.min(HIST_BUCKETS - 1, Math.ceil(Math.log(ms / HIST_BASE_MS) / LOG_RATIO));
}

/** Upper bound of histogram bucket i (bucket 0 is [0, 0.1 ms]). */
const upper = (i: number): number => HIST_BASE_MS * HIST_RATIO ** i;

/** The q-quantile of a histogram, interpolated in log space within its bucket. */
function quantile(hist: Uint32Array, count: number, q: number): number {
  const rank = q * count;
  let seen = 0;
  for (let i = 0; i < HIST_BUCKETS; i++) {
    const n = hist[i]!;
    if (n === 0) continue;
    if (seen + n >= rank) {
      if (i === 0) return HIST_BASE_MS;
      const fraction = Math.min(1, Math.max(0, (rank - seen) / n));
      return upper(i - 1) * HIST_RATIO ** fraction;
    }
    seen += n;
  }
  return upper(HIST_BUCKETS - 1);
}

export class InstanceHistory {
  /** POINTS × FIELDS; NaN is "nothing measured" (no request, or not running when sampled). */
  private readonly ring = new Float32Array(POINTS * FIELDS);
  private readonly live = new Uint32Array(HIST_BUCKETS);
  private liveCount = 0;
  /** Absolute slot of the bucket in progress, and of the first one ever kept. */
  private slot: number;
  private readonly firstSlot: number;
  /** Last CPU reading, for the rate (cpuSeconds counts from the process start: a new epoch starts over). */
  private lastCpu = Number.NaN;
  private lastCpuAt = 0;
  private lastEpoch = -1;

  constructor(now = Date.now()) {
    this.slot = slotOf(now);
    this.firstSlot = this.slot;
    this.clear(this.slot);
  }

  static readonly bytesPerInstance = POINTS * FIELDS * 4 + HIST_BUCKETS * 4;

  /** `count` requests that took `durationMs` each (an edge's counters give a count and a mean, not each request). */
  record(durationMs: number, now = Date.now(), count = 1): void {
    this.advance(slotOf(now));
    this.live[bucketOf(durationMs)]! += count;
    this.liveCount += count;
  }

  /** A stats reading of the running instance: memory as is, CPU as cores used since the previous reading. */
  sample(memoryBytes: number | null, cpuSeconds: number | null, epoch: number, now = Date.now()): number | null {
    this.advance(slotOf(now));
    const base = (this.slot % POINTS) * FIELDS;
    if (memoryBytes !== null) this.ring[base + MEMORY] = memoryBytes;
    let cores: number | null = null;
    if (cpuSeconds !== null) {
      if (epoch === this.lastEpoch && !Number.isNaN(this.lastCpu) && now > this.lastCpuAt && cpuSeconds >= this.lastCpu) {
        cores = (cpuSeconds - this.lastCpu) / ((now - this.lastCpuAt) / 1000);
        this.ring[base + CPU] = cores;
      }
      this.lastCpu = cpuSeconds;
      this.lastCpuAt = now;
      this.lastEpoch = epoch;
    }
    return cores;
  }

  /** Requests per second over the last complete bucket. */
  lastRps(now = Date.now()): number {
    this.advance(slotOf(now));
    const previous = this.slot - 1;
    if (previous < this.firstSlot) return 0;
    const count = this.ring[(previous % POINTS) * FIELDS + COUNT]!;
    return count / (STEP_MS / 1000);
  }

  /** Oldest first, one per step, the last being the bucket in progress. */
  points(now = Date.now()): HistoryPoint[] {
    const current = slotOf(now);
    this.advance(current);
    const from = Math.max(this.firstSlot, current - POINTS + 1);
    const out: HistoryPoint[] = [];
    for (let s = from; s <= current; s++) {
      const base = (s % POINTS) * FIELDS;
      const inProgress = s === current;
      const count = inProgress ? this.liveCount : this.ring[base + COUNT]!;
      const seconds = inProgress ? Math.max(1, (now - s * STEP_MS) / 1000) : STEP_MS / 1000;
      const pick = (field: number, q: number): number | null => {
        if (count === 0) return null;
        return round(inProgress ? quantile(this.live, count, q) : this.ring[base + field]!);
      };
      out.push({
        t: s * STEP_MS,
        rps: round(count / seconds),
        p50: pick(P50, 0.5),
        p95: pick(P95, 0.95),
        p99: pick(P99, 0.99),
        memory: orNull(this.ring[base + MEMORY]!, 0),
        cpu: orNull(this.ring[base + CPU]!, 4),
      });
    }
    return out;
  }

  /** Moves to `slot`: the bucket in progress gets its percentiles, buckets skipped over are emptied. */
  private advance(slot: number): void {
    if (slot <= this.slot) return;
    const base = (this.slot % POINTS) * FIELDS;
    this.ring[base + COUNT] = this.liveCount;
    if (this.liveCount > 0) {
      this.ring[base + P50] = quantile(this.live, this.liveCount, 0.5);
      this.ring[base + P95] = quantile(this.live, this.liveCount, 0.95);
      this.ring[base + P99] = quantile(this.live, this.liveCount, 0.99);
      this.live.fill(0);
      this.liveCount = 0;
    }
    for (let s = Math.max(this.slot + 1, slot - POINTS + 1); s <= slot; s++) this.clear(s);
    this.slot = slot;
  }

  private clear(slot: number): void {
    const base = (slot % POINTS) * FIELDS;
    this.ring.fill(Number.NaN, base, base + FIELDS);
    this.ring[base + COUNT] = 0;
  }
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

function orNull(value: number, digits: number): number | null {
  if (Number.isNaN(value)) return null;
  if (digits === 0) return Math.round(value);
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** Every instance's history, made on first use and dropped when the instance is removed. */
export class HistoryTable {
  private readonly byKey = new Map<string, InstanceHistory>();

  get size(): number {
    return this.byKey.size;
  }

  of(key: string): InstanceHistory {
    let history = this.byKey.get(key);
    if (!history) {
      history = new InstanceHistory();
      this.byKey.set(key, history);
    }
    return history;
  }

  peek(key: string): InstanceHistory | undefined {
    return this.byKey.get(key);
  }

  delete(key: string): void {
    this.byKey.delete(key);
  }

  keys(): IterableIterator<string> {
    return this.byKey.keys();
  }
}
