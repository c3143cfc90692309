// Sync and cleanup of the sidecar over shared/net, plus the ownership record (a small JSON file)
// that lets a later `--cleanup` remove exactly what was added.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../shared/log/index.ts';
import {
  applyIpPlan,
  applyRestoreDocs,
  planLinks,
  planLinksCleanup,
  planRules,
  planRulesCleanup,
  readLinks,
  readRules,
  type CurrentLink,
  type IpArgs,
  type NetDeps,
  type RestoreDoc,
  type RuleTable,
} from '../../shared/net/index.ts';
import type { ErrorKind, SidecarMetrics } from './metrics.ts';
import {
  chainsOf,
  chainTables,
  staleChains,
  withChains,
  withoutChains,
  linksToCleanup,
  linksToSync,
  migrateLegacy,
  NOTHING_OWNED,
  ownedAfter,
  ownedBefore,
  parseOwned,
  reconcileOwned,
  renderOwned,
  type Desired,
  type Owned,
  type OwnedChainRef,
} from './plan.ts';

export interface SidecarDeps {
  net: NetDeps;
  log: Logger;
  metrics: SidecarMetrics;
  /** where `Owned` is kept between runs (for `--cleanup` after the daemon is gone) */
  stateFile: string;
}

/** What one sync changed: one entry per mutating call (`ip addr add 10.96.0.2/32 dev lo`...). */
export interface SyncReport {
  changes: string[];
  ms: number;
}

/** A failure of one part of a sync or cleanup; `kind` feeds the errors metric. */
export class SidecarError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SidecarError';
    this.kind = kind;
  }
}

/** The sidecar's sync and cleanup. Calls must not overlap (the loop serializes them). */
export class Sidecar {
  readonly #want: Desired;
  readonly #d: SidecarDeps;
  /** what this process last wrote to (or read from) the state file */
  #owned: Owned = NOTHING_OWNED;

  constructor(want: Desired, deps: SidecarDeps) {
    this.#want = want;
    this.#d = deps;
  }

  /**
   * Brings the host to the desired state; a sync that finds no drift makes only read calls. A step
   * that fails does not stop the steps that do not depend on it; the sync then rejects with all
   * the failures.
   */
  async sync(): Promise<SyncReport> {
    const started = performance.now();
    const end = this.#d.metrics.syncDuration.startTimer();
    const changes: string[] = [];
    const errors: SidecarError[] = [];
    const step = async (f: () => Promise<void>): Promise<void> => {
      try {
        await f();
      } catch (err) {
        errors.push(asSidecarError(err));
      }
    };
    try {
      await step(() => this.#syncLinks(changes, errors));
      if (this.#want.rules.length > 0) {
        await step(async () => {
          const docs = planRules(this.#want.rules, await this.#readRules(this.#want.rules));
          // recorded before they are created, like links and addresses
          if (docs.length > 0)
            await this.#saveOwned(withChains(this.#owned, chainsOf(this.#want.rules)));
          for (const doc of docs) await step(() => this.#applyRules([doc], changes));
        });
      }
      const stale = staleChains(this.#owned, this.#want);
      if (stale.length > 0) await step(() => this.#removeChains(stale, changes));
    } finally {
      end();
    }
    for (const e of errors) this.#d.metrics.errors.inc({ kind: e.kind });
    if (errors.length > 0) {
      this.#d.metrics.syncs.inc({ result: 'error' });
      throw combine(errors);
    }
    this.#d.metrics.syncs.inc({ result: 'ok' });
    return { changes, ms: Math.round(performance.now() - started) };
  }

  /**
   * Removes what this sidecar added (its link, its addresses, each on the device it added it to)
   * and its chains. A step that fails does not stop the others; it then rejects with them all.
   */
  async cleanup(): Promise<string[]> {
    const removed: string[] = [];
    const errors: SidecarError[] = [];
    // the file, and what this process added (the file may have been rewritten by another cleanup)
    let owned: Owned = this.#owned;
    let file: Owned | undefined;
    try {
      const current = await this.#readLinks();
      file = await this.#readOwned(current);
      owned = reconcileOwned(file, this.#owned, current);
      const plan = planLinksCleanup(linksToCleanup(owned), current);
      for (const args of plan) {
        try {
          await this.#ip(args);
        } catch (err) {
          errors.push(asSidecarError(err));
          continue;
        }
        removed.push(`ip ${args.join(' ')}`);
        owned = ownedAfter(owned, args);
      }
    } catch (err) {
      errors.push(asSidecarError(err));
    }
    try {
      // the config's chains (ours by name even when unrecorded) and every recorded one
      const chains = withChains(withChains(NOTHING_OWNED, chainsOf(this.#want.rules)), [
        ...(file ?? (await this.#readOwned(null))).chains,
        ...this.#owned.chains,
      ]).chains;
      if (chains.length > 0) await this.#removeChains(chains, removed);
    } catch (err) {
      errors.push(asSidecarError(err));
    }
    // without the file and the links read, this process knows too little to rewrite the record:
    // it would drop what an earlier process added (kept for the next cleanup instead)
    if (file !== undefined) {
      try {
        // what we owned and is gone already is no longer ours either
        await this.#saveOwned(
          errors.length === 0 ? NOTHING_OWNED : { ...owned, chains: this.#owned.chains },
        );
      } catch (err) {
        errors.push(asSidecarError(err));
      }
    }
    if (errors.length > 0) throw combine(errors);
    return removed;
  }

  async #syncLinks(changes: string[], errors: SidecarError[]): Promise<void> {
    const current = await this.#readLinks();
    // the file may say less than we know (a failed write, an outside --cleanup): make it agree
    // (and a version-1 file is written in the current format here)
    let owned = reconcileOwned(await this.#readOwned(current), this.#owned, current);
    await this.#saveOwned(owned);
    const link = current.find((l) => l.name === this.#want.link);
    if (link !== undefined && !link.up && owned.link !== this.#want.link) {
      this.#d.log.warn({ link: this.#want.link }, 'interface is down and not ours to bring up');
    }
    let plan: IpArgs[];
    try {
      plan = planLinks(linksToSync(this.#want, current, owned), current);
    } catch (cause) {
      throw new SidecarError('link', errText(cause), { cause });
    }
    // an address cannot go on a link we failed to create or bring up; other addresses still can
    const failedLinks = new Set<string>();
    for (const args of plan) {
      const dev = args[0] === 'link' ? args[2] : args[4];
      if (dev !== undefined && failedLinks.has(dev)) continue;
      try {
        // recorded before the call: a crash right after it leaves nothing of ours unrecorded
        // (cleanup skips what the record lists and is not there)
        const next = ownedBefore(owned, args);
        await this.#saveOwned(next);
        owned = next;
        await this.#ip(args);
      } catch (err) {
        errors.push(asSidecarError(err));
        if (args[0] === 'link' && dev !== undefined) failedLinks.add(dev);
        continue;
      }
      changes.push(`ip ${args.join(' ')}`);
      this.#d.metrics.repairs.inc({ kind: args[0] === 'link' ? 'link' : 'address' });
    }
  }

  /** Removes `chains` and the jumps to them, then drops them from the record. */
  async #removeChains(chains: readonly OwnedChainRef[], changes: string[]): Promise<void> {
    const tables = chainTables(chains);
    await this.#applyRules(planRulesCleanup(tables, await this.#readRules(tables)), changes);
    await this.#saveOwned(withoutChains(this.#owned, chains));
  }

  async #applyRules(docs: readonly RestoreDoc[], changes: string[]): Promise<void> {
    for (const doc of docs) {
      try {
        await applyRestoreDocs(this.#d.net, [doc]);
      } catch (cause) {
        throw new SidecarError('rules', errText(cause), { cause });
      }
      changes.push(`${doc.family} ${doc.table} rules`);
      this.#d.metrics.repairs.inc({ kind: 'rules' });
    }
  }

  async #readLinks(): ReturnType<typeof readLinks> {
    try {
      return await readLinks(this.#d.net);
    } catch (cause) {
      throw new SidecarError('read', `reading links and addresses: ${errText(cause)}`, { cause });
    }
  }

  async #readRules(tables: readonly RuleTable[]): ReturnType<typeof readRules> {
    try {
      return await readRules(this.#d.net, tables);
    } catch (cause) {
      throw new SidecarError('read', errText(cause), { cause });
    }
  }

  async #ip(args: IpArgs): Promise<void> {
    try {
      await applyIpPlan(this.#d.net, [args]);
    } catch (cause) {
      throw new SidecarError(args[0] === 'link' ? 'link' : 'address', errText(cause), { cause });
    }
  }

  /**
   * The state file's record; nothing when there is none (or it is torn or foreign). Version-1
   * addresses are migrated against `current` (see migrateLegacy), or left out when it is null; the
   * caller's next save writes the record in the current format.
   */
  async #readOwned(current: readonly CurrentLink[] | null): Promise<Owned> {
    let text: string;
    try {
      text = await readFile(this.#d.stateFile, 'utf8');
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return NOTHING_OWNED;
      throw new SidecarError('state', `reading state ${this.#d.stateFile}: ${errText(cause)}`, {
        cause,
      });
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (cause) {
      // a torn or foreign file: we cannot know what we own, so we claim nothing
      this.#d.log.warn(
        { file: this.#d.stateFile, err: errText(cause) },
        'ignoring unreadable state',
      );
      return NOTHING_OWNED;
    }
    const { owned, legacy, warnings } = parseOwned(raw);
    for (const w of warnings) this.#d.log.warn({ file: this.#d.stateFile }, w);
    if (current === null || legacy.length === 0) return owned;
    const dev = this.#want.link;
    const m = migrateLegacy(owned, legacy, dev, current);
    for (const cidr of m.claimed) {
      this.#d.log.info(
        { file: this.#d.stateFile, dev, cidr },
        'claimed an address an older state file lists without its device: it is on the interface',
      );
    }
    for (const cidr of m.dropped) {
      this.#d.log.warn(
        { file: this.#d.stateFile, dev, cidr },
        `${cidr} is recorded without its device (state written by an older version) and is not on ${dev}: ` +
          'dropped from the record, not removed from any device',
      );
    }
    return m.owned;
  }

  /**
   * Writes `owned` unless the file already says so; the record in memory changes only once the
   * file has it, so a failed write is retried by the next sync (which fails until it succeeds).
   */
  async #saveOwned(owned: Owned): Promise<void> {
    const file = this.#d.stateFile;
    const text = renderOwned(owned);
    const have = await readFile(file, 'utf8').catch(() => undefined);
    if (have === text) {
      this.#owned = owned;
      return;
    }
    // unique: a daemon and a --cleanup may write at the same time
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
      await writeFile(tmp, text, { mode: 0o600, flush: true });
      await rename(tmp, file);
    } catch (cause) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw new SidecarError('state', `writing state ${file}: ${errText(cause)}`, { cause });
    }
    this.#owned = owned;
  }
}

function asSidecarError(err: unknown): SidecarError {
  return err instanceof SidecarError ? err : new SidecarError('read', errText(err), { cause: err });
}

/** One error for the failures of one sync: the first one's kind, every message. */
function combine(errors: readonly SidecarError[]): SidecarError {
  if (errors.length === 1) return errors[0]!;
  return new SidecarError(errors[0]!.kind, errors.map((e) => e.message).join('; '), {
    cause: new AggregateError(errors),
  });
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
