// A scripted Runner for pure unit tests: records every argv and answers from a script. For the
// ip/iptables state machine use shared/net/fake.ts instead.
import { ExecError } from './index.ts';
import type { RunOptions, RunResult, Runner, Spawned } from './types.ts';

/** What a scripted call returns; anything left out is 0 / '' / null. */
export interface FakeResult {
  code?: number;
  stdout?: string;
  stderr?: string;
}

export type FakeScript = (argv: readonly string[], opts: RunOptions) => FakeResult | undefined;

export class FakeRunner implements Runner {
  readonly calls: { argv: readonly string[]; opts: RunOptions }[] = [];
  readonly #rules: { prefix: readonly string[]; result: FakeResult }[] = [];

  /** `script` answers first; then the `on()` rules; a call nothing answers rejects. */
  constructor(private readonly script?: FakeScript) {}

  /** Answers calls whose argv starts with `prefix` (the latest matching rule wins). */
  on(prefix: readonly string[], result: FakeResult = {}): this {
    this.#rules.unshift({ prefix, result });
    return this;
  }

  /** The argv of every call, each joined with spaces. */
  argvs(): string[] {
    return this.calls.map((c) => c.argv.join(' '));
  }

  run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    this.calls.push({ argv, opts });
    const r =
      this.script?.(argv, opts) ??
      this.#rules.find((x) => x.prefix.every((p, i) => argv[i] === p))?.result;
    if (r === undefined) {
      return Promise.reject(new Error(`fake runner: no answer scripted for ${argv.join(' ')}`));
    }
    const res: RunResult = {
      argv,
      code: r.code ?? 0,
      signal: null,
      stdout: r.stdout ?? '',
      stderr: r.stderr ?? '',
      durationMs: 0,
    };
    if ((opts.okCodes ?? [0]).includes(res.code!)) return Promise.resolve(res);
    const detail = res.stderr.trim().split('\n', 1)[0] ?? '';
    return Promise.reject(
      new ExecError(`exited ${res.code!}${detail === '' ? '' : `: ${detail}`}`, res),
    );
  }

  spawn(argv: readonly string[]): Spawned {
    this.calls.push({ argv, opts: {} });
    throw new Error(`fake runner: spawn is not scripted (${argv.join(' ')})`);
  }
}
