// Sync and cleanup of the sidecar over shared/net, plus the ownership record (a small JSON file)
// that lets a later `--cleanup` remove exactly what was added.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
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
  type IpArgs,
  type NetDeps,
  type RestoreDoc,
} from '../../shared/net/index.ts';
import type { ErrorKind, SidecarMetrics } from './metrics.ts';
import {
  linksToCleanup,
  linksToSync,
  NOTHING_OWNED,
  ownedAfter,
  type Desired,
  type Owned,
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
  #owned: Owned | undefined;

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
          const docs = planRules(this.#want.rules, await this.#readRules());
          for (const doc of docs) await step(() => this.#applyRules([doc], changes));
        });
      }
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

  /** Removes what this sidecar added (its link, or its addresses) and its chains. */
  async cleanup(): Promise<string[]> {
    const removed: string[] = [];
    let owned = await this.#loadOwned();
    const plan = planLinksCleanup(linksToCleanup(this.#want, owned), await this.#readLinks());
    for (const args of plan) {
      await this.#ip(args);
      owned = ownedAfter(owned, args);
      await this.#saveOwned(owned);
      removed.push(`ip ${args.join(' ')}`);
    }
    // what we owned and is gone already is no longer ours either
    await this.#saveOwned(NOTHING_OWNED);
    if (this.#want.rules.length > 0) {
      await this.#applyRules(planRulesCleanup(this.#want.rules, await this.#readRules()), removed);
    }
    return removed;
  }

  async #syncLinks(changes: string[], errors: SidecarError[]): Promise<void> {
    let owned = await this.#loadOwned();
    const current = await this.#readLinks();
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
        await this.#ip(args);
      } catch (err) {
        errors.push(asSidecarError(err));
        if (args[0] === 'link' && dev !== undefined) failedLinks.add(dev);
        continue;
      }
      changes.push(`ip ${args.join(' ')}`);
      this.#d.metrics.repairs.inc({ kind: args[0] === 'link' ? 'link' : 'address' });
      // recorded after every call: a crash mid-sync leaves nothing of ours unaccounted for
      const next = ownedAfter(owned, args);
      if (next !== owned) {
        owned = next;
        await this.#saveOwned(owned);
      }
    }
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

  async #readRules(): ReturnType<typeof readRules> {
    try {
      return await readRules(this.#d.net, this.#want.rules);
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

  async #loadOwned(): Promise<Owned> {
    if (this.#owned !== undefined) return this.#owned;
    let text: string;
    try {
      text = await readFile(this.#d.stateFile, 'utf8');
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return (this.#owned = NOTHING_OWNED);
      throw new SidecarError('state', `reading state ${this.#d.stateFile}: ${errText(cause)}`, {
        cause,
      });
    }
    try {
      const raw = JSON.parse(text) as { link?: unknown; addresses?: unknown };
      const link = typeof raw.link === 'string' ? raw.link : null;
      const addresses = Array.isArray(raw.addresses)
        ? raw.addresses.filter((a): a is string => typeof a === 'string')
        : [];
      return (this.#owned = { link, addresses });
    } catch (cause) {
      // a torn or foreign file: we cannot know what we own, so we claim nothing
      this.#d.log.warn(
        { file: this.#d.stateFile, err: errText(cause) },
        'ignoring unreadable state',
      );
      return (this.#owned = NOTHING_OWNED);
    }
  }

  async #saveOwned(owned: Owned): Promise<void> {
    this.#owned = owned;
    const file = this.#d.stateFile;
    try {
      await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
      const tmp = `${file}.tmp`;
      await writeFile(tmp, `${JSON.stringify(owned)}\n`, { mode: 0o600 });
      await rename(tmp, file);
    } catch (cause) {
      throw new SidecarError('state', `writing state ${file}: ${errText(cause)}`, { cause });
    }
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
