/**
 * Sharing the flats between ingestion replicas with leases in MongoDB. Flats
 * hash into buckets; each replica heartbeats as a member and holds at most
 * its fair share of bucket leases (buckets / live members, rounded up),
 * renewing them every renewMs (for its first TTL at least buckets / the
 * replicas expected, so that siblings starting with it find their share
 * free). A lease that is not renewed expires after ttlMs
 * and another replica takes it, so a dead replica's flats are polled again
 * within ttl + renew. While the database is unreachable a replica keeps the
 * buckets it holds (and keeps polling them): double polling is harmless,
 * storage being idempotent, and no flat goes unpolled.
 *
 * The fair share limits what a replica takes from the pool, not what it may
 * rescue: a bucket that nobody took for a whole TTL after it was freed or
 * expired (its share belongs to a member that heartbeats but cannot finish a
 * round, e.g. on a starved machine) is taken by any replica beyond its share,
 * so that every flat keeps being polled; balance comes back as the surplus is
 * given back to a member below its share.
 *
 * While no lease round succeeds (the database away) a replica also polls a
 * fixed share of the buckets, its fallback (by replica ordinal: bucket %
 * replicas = ordinal): a replica started, restarted or moved during an outage
 * holds no lease yet, and without it its flats would go unpolled until the
 * devices' window had dropped their readings, although the outbox could keep
 * them. Every bucket is some live replica's fallback, so every flat is polled
 * through the outage; a bucket polled twice costs a duplicate, never a loss.
 */
import { hostname } from 'node:os';
import { MongoServerError, type Db } from 'mongodb';
import { deadline, DUPLICATE_KEY, type Logger } from '@flatline/platform';

interface MemberDoc {
  _id: string;
  seen_at: Date;
  host: string;
}

interface LeaseDoc {
  _id: number;
  owner: string | null;
  expires_at: Date;
}


/** Lease settings. */
export interface LeaseSettings {
  readonly buckets: number;
  readonly ttlMs: number;
  readonly renewMs: number;
  readonly dbTimeoutMs: number;
  /** Buckets polled while no lease round succeeds (default none). */
  readonly fallback?: ReadonlySet<number>;
  /**
   * Replicas expected (FLATLINE_INGESTION_REPLICAS, default 1): for its
   * first TTL a replica counts at least this many members in its fair
   * share, leaving the shares of siblings still starting to them. Without
   * it the first replica up takes every bucket and hands half back seconds
   * later, and the one that takes them over fetches each flat's whole window
   * again (its outbox has no cursor for them): in `flatline up --flats
   * 10000` ingestion-1 came up 3.7 s after ingestion-0 and stored ~180,000
   * readings a second time in the start-up burst; a scale-suite repeat the
   * same day (2026-12-02, logs not kept) matched it, one outbox 44,632
   * readings behind and freshness p99 21.5 s in minute 2. A sibling that
   * does not come costs a TTL: its share is taken once the window ends.
   */
  readonly replicas?: number;
  /**
   * While no lease round succeeds: keep polling the held buckets and the
   * fallback (default), or release them once the leases expire (a weakened
   * configuration: flats go unpolled through an outage longer than the TTL).
   */
  readonly onOutage?: 'keep' | 'release';
}

/** The fallback share of replica ordinal out of replicas: bucket % replicas === ordinal (every bucket without a known ordinal). */
export function fallbackShare(buckets: number, ordinal: number | undefined, replicas: number): Set<number> {
  const all = Array.from({ length: buckets }, (_, b) => b);
  if (ordinal === undefined || ordinal >= replicas) return new Set(all);
  return new Set(all.filter((b) => b % replicas === ordinal));
}

/** Keeps this replica's share of bucket leases; reports the held set on every change. */
export class LeaseManager {
  private held = new Set<number>();
  /** What onChange last reported: the held buckets, plus the fallback while rounds fail. */
  private polled = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> = Promise.resolve();
  private dbOk: boolean | undefined;
  /** When the leases held were last renewed (release on outage: they run out a TTL later). */
  private renewedAt = -Infinity;
  /** When the first round ran: the start window (settings.replicas) lasts a TTL from it. */
  private startedAt: number | undefined;

  constructor(
    private readonly db: Db,
    private readonly id: string,
    private readonly settings: LeaseSettings,
    private readonly logger: Logger,
    private readonly onChange: (buckets: ReadonlySet<number>, gained: ReadonlySet<number>) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Starts the renewal loop (the first round runs at once). */
  start(): void {
    const tick = (): void => {
      this.round = this.renew().finally(() => {
        if (this.timer !== undefined) this.timer = setTimeout(tick, this.settings.renewMs);
      });
    };
    this.timer = setTimeout(tick, 0);
  }

  /** Buckets held now. */
  buckets(): ReadonlySet<number> {
    return this.held;
  }

  /** Buckets polled now (held, plus the fallback while the lease database cannot be read). */
  polledBuckets(): ReadonlySet<number> {
    return this.polled;
  }

  /** Stops renewing and gives the leases back, so other replicas take them at once. */
  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.round;
    const timeoutMS = this.settings.dbTimeoutMs;
    try {
      await this.db.collection<LeaseDoc>('ingestion_leases').updateMany({ owner: this.id }, { $set: { owner: null, expires_at: new Date(0) } }, deadline(timeoutMS));
      await this.db.collection<MemberDoc>('ingestion_members').deleteOne({ _id: this.id }, deadline(timeoutMS));
      this.logger.info({ buckets: this.held.size }, 'leases released');
    } catch (err) {
      this.logger.warn({ err }, 'cannot release leases; they expire by themselves');
    }
  }

  /** One renewal round; exported for tests through start(). */
  private async renew(): Promise<void> {
    const timeoutMS = this.settings.dbTimeoutMs;
    const now = this.now();
    this.startedAt ??= now;
    const expires = new Date(now + this.settings.ttlMs);
    const members = this.db.collection<MemberDoc>('ingestion_members');
    const leases = this.db.collection<LeaseDoc>('ingestion_leases');
    try {
      await members.updateOne({ _id: this.id }, { $set: { seen_at: new Date(now), host: hostname() } }, deadline(timeoutMS, { upsert: true }));
      const live = await members.countDocuments({ seen_at: { $gt: new Date(now - this.settings.ttlMs) } }, deadline(timeoutMS));
      const starting = now < this.startedAt + this.settings.ttlMs;
      const fair = Math.ceil(this.settings.buckets / Math.max(1, live, starting ? (this.settings.replicas ?? 1) : 1));
      await leases.updateMany({ owner: this.id }, { $set: { expires_at: expires } }, deadline(timeoutMS));
      const docs = await leases.find({}, deadline(timeoutMS)).toArray();
      const mine = new Set(docs.filter((d) => d.owner === this.id && d.expires_at.getTime() > now).map((d) => d._id));
      // Give back what is over the fair share when another live member holds
      // less than its share (a replica joined): it takes them on its next round.
      const liveIds = (await members.find({ seen_at: { $gt: new Date(now - this.settings.ttlMs) } }, deadline(timeoutMS, { projection: { _id: 1 } })).toArray()).map((m) => m._id);
      const held = (owner: string): number => docs.filter((d) => d.owner === owner && d.expires_at.getTime() > now).length;
      if (liveIds.some((m) => m !== this.id && held(m) < fair)) {
        for (const bucket of [...mine].slice(fair)) {
          // Freed now (not at the epoch): it counts as orphaned only a TTL from now.
          await leases.updateOne({ _id: bucket, owner: this.id }, { $set: { owner: null, expires_at: new Date(now) } }, deadline(timeoutMS));
          mine.delete(bucket);
        }
      }
      // Take free or expired buckets up to the fair share, and any bucket
      // orphaned for a whole TTL beyond it.
      const taken = new Map(docs.map((d) => [d._id, d]));
      const start = Math.floor(Math.random() * this.settings.buckets);
      for (let i = 0; i < this.settings.buckets; i++) {
        const bucket = (start + i) % this.settings.buckets;
        const doc = taken.get(bucket);
        if (mine.has(bucket)) continue;
        if (doc !== undefined && doc.owner !== null && doc.owner !== this.id && doc.expires_at.getTime() > now) continue;
        const orphaned = doc !== undefined && doc.expires_at.getTime() <= now - this.settings.ttlMs;
        if (mine.size >= fair && !orphaned) {
          // A bucket nobody ever took gets a free lease document, so that
          // "free since when" is known and it can be rescued a TTL later.
          if (doc === undefined) await leases.insertOne({ _id: bucket, owner: null, expires_at: new Date(now) }, deadline(timeoutMS)).catch(() => undefined);
          continue;
        }
        if (await this.claim(bucket, doc, expires)) mine.add(bucket);
      }
      this.setDb(true);
      this.held = mine;
      this.renewedAt = now;
      this.apply(mine);
    } catch (err) {
      this.setDb(false, err);
      if (this.settings.onOutage === 'release') {
        this.apply(this.now() < this.renewedAt + this.settings.ttlMs ? new Set(this.held) : new Set());
        return;
      }
      // Keep what we hold, and poll the fallback share too: polling goes on
      // while the database is away, for every flat.
      this.apply(new Set([...this.held, ...(this.settings.fallback ?? [])]));
    }
  }

  private async claim(bucket: number, doc: LeaseDoc | undefined, expires: Date): Promise<boolean> {
    const leases = this.db.collection<LeaseDoc>('ingestion_leases');
    const timeoutMS = this.settings.dbTimeoutMs;
    if (doc === undefined) {
      try {
        await leases.insertOne({ _id: bucket, owner: this.id, expires_at: expires }, deadline(timeoutMS));
        return true;
      } catch (err) {
        if (err instanceof MongoServerError && err.code === DUPLICATE_KEY) return false;
        throw err;
      }
    }
    // Compare-and-set on what we saw, so two replicas cannot both take it.
    const res = await leases.updateOne({ _id: bucket, owner: doc.owner, expires_at: doc.expires_at }, { $set: { owner: this.id, expires_at: expires } }, deadline(timeoutMS));
    return res.modifiedCount === 1;
  }

  private apply(polled: Set<number>): void {
    const gained = new Set([...polled].filter((b) => !this.polled.has(b)));
    const lost = [...this.polled].filter((b) => !polled.has(b));
    if (gained.size === 0 && lost.length === 0) return;
    this.logger.info({ polled: polled.size, held: this.held.size, gained: gained.size, released: lost.length }, 'polled buckets changed');
    this.polled = polled;
    this.onChange(polled, gained);
  }

  private setDb(ok: boolean, err?: unknown): void {
    if (ok === this.dbOk) return;
    this.dbOk = ok;
    if (ok) this.logger.info('lease database reachable');
    else if (this.settings.onOutage === 'release') this.logger.warn({ err, held: this.held.size }, 'lease database unreachable: polling the buckets held until their leases expire (FLATLINE_LEASE_ON_OUTAGE=release)');
    else this.logger.warn({ err, held: this.held.size, fallback: this.settings.fallback?.size ?? 0 }, 'lease database unreachable: polling the buckets held and this replica\'s fallback share');
  }
}
