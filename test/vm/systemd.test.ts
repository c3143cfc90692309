// shared/systemd under a real systemd: the tiny fixture daemon as a Type=notify unit.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { BIN, vmRunner, vmSkipReason, waitFor } from './helpers.ts';

const skip = await vmSkipReason();
const UNIT = 'hp-tiny';
const PORT = 18931;
const CONFIG = '/run/hp-tiny.toml';
const EXIT_FILE = '/run/hp-tiny.exit';

let lastError = '';

/** GET / on the daemon's port: the body, or undefined (the reason in `lastError`). */
async function get(): Promise<string | undefined> {
  try {
    // generous: under TCG a loaded VM can take seconds to answer a first request
    const res = await fetch(`http://127.0.0.1:${PORT}/`, { signal: AbortSignal.timeout(30_000) });
    return await res.text();
  } catch (err) {
    lastError = String((err as Error).cause ?? err);
    return undefined;
  }
}

describe('the tiny daemon as a Type=notify unit', { skip, timeout: 900_000 }, () => {
  const runner = skip === false ? vmRunner() : undefined;
  const systemctl = (...args: string[]) =>
    runner!.run([BIN.systemctl, ...args], { timeoutMs: 120_000, okCodes: [0, 1, 3, 4, 5] });
  const state = async (unit: string): Promise<string> =>
    (await systemctl('show', '-P', 'ActiveState', unit)).stdout.trim();
  /** the unit's last journal lines, for a failure message */
  const journal = async (unit: string): Promise<string> =>
    (
      await runner!.run([BIN.journalctl, '-u', unit, '--no-pager', '-n', '40', '-o', 'cat'], {
        timeoutMs: 60_000,
        okCodes: [0, 1],
      })
    ).stdout;
  /** systemd-run argv for the fixture; ExecStopPost records how the main process ended. */
  const startArgv = (unit: string, config: string, wait: boolean): string[] => [
    BIN.systemdRun,
    `--unit=${unit}`,
    '--quiet',
    ...(wait ? [] : ['--no-block']),
    '-p',
    'Type=notify',
    '-p',
    'ExecReload=/bin/kill -HUP $MAINPID',
    '-p',
    `ExecStopPost=/bin/sh -c 'echo "$EXIT_CODE $EXIT_STATUS" > ${EXIT_FILE}'`,
    '-p',
    'TimeoutStartSec=300',
    '-p',
    `WorkingDirectory=${process.cwd()}`,
    BIN.node,
    '--import',
    'tsx',
    'test/fixtures/tiny-daemon/main.ts',
    '--config',
    config,
  ];

  before(async () => {
    // node loads fetch (undici) lazily: seconds under TCG, so not inside a measured step
    await get();
  });

  after(async () => {
    await systemctl('stop', UNIT, `${UNIT}-nr`, `${UNIT}-bad`);
    await systemctl('reset-failed', UNIT, `${UNIT}-nr`, `${UNIT}-bad`);
  });

  it('is active only after READY, and answers HTTP whenever systemd says active', async () => {
    await rm(EXIT_FILE, { force: true });
    await writeFile(CONFIG, `listen = "127.0.0.1:${PORT}"\ngreeting = "hello one"\n`);
    await runner!.run(startArgv(UNIT, CONFIG, false), { timeoutMs: 60_000 });
    const seen = new Set<string>();
    const answer = await waitFor(
      'the unit to become active',
      async () => {
        const s = await state(UNIT);
        seen.add(s);
        if (s === 'failed') throw new Error(`${UNIT} failed to start:\n${await journal(UNIT)}`);
        if (s !== 'active') return undefined;
        // systemd says active: READY=1 arrived, so the listener must already answer
        const body = await get();
        assert.notEqual(body, undefined, `active, but nothing answers on the port: ${lastError}`);
        return body;
      },
      300_000,
    );
    assert.ok(seen.has('activating'), `states seen: ${[...seen].join(', ')}`);
    assert.match(answer, /hello one/);
    assert.equal((await systemctl('is-active', UNIT)).stdout.trim(), 'active');
  });

  it('systemctl reload makes the running daemon serve the new greeting', async () => {
    const pidBefore = (await systemctl('show', '-P', 'MainPID', UNIT)).stdout.trim();
    await writeFile(CONFIG, `listen = "127.0.0.1:${PORT}"\ngreeting = "hello two"\n`);
    await systemctl('reload', UNIT);
    const body = await waitFor('the new greeting', async () => {
      const b = await get();
      return b?.includes('hello two') === true ? b : undefined;
    });
    assert.match(body, /hello two/);
    assert.equal(await state(UNIT), 'active');
    const pidAfter = (await systemctl('show', '-P', 'MainPID', UNIT)).stdout.trim();
    assert.equal(pidAfter, pidBefore, 'a reload keeps the same process');
  });

  it('systemctl stop ends it cleanly: exit status 0 and the port closed', async () => {
    const r = await systemctl('stop', UNIT);
    assert.equal(r.code, 0);
    assert.notEqual(await state(UNIT), 'failed');
    assert.equal((await readFile(EXIT_FILE, 'utf8')).trim(), 'exited 0');
    assert.equal(await get(), undefined);
  });

  it('as Type=notify-reload, systemctl reload returns only once the new greeting is served', async () => {
    const unit = `${UNIT}-nr`;
    await writeFile(CONFIG, `listen = "127.0.0.1:${PORT}"\ngreeting = "hello three"\n`);
    const argv = startArgv(unit, CONFIG, true).map((a) =>
      a === 'Type=notify' ? 'Type=notify-reload' : a,
    );
    await runner!.run(argv, { timeoutMs: 330_000 });
    assert.match((await get()) ?? '', /hello three/);
    await writeFile(CONFIG, `listen = "127.0.0.1:${PORT}"\ngreeting = "hello four"\n`);
    const r = await systemctl('reload', unit);
    assert.equal(r.code, 0, r.stderr);
    // systemd sent SIGHUP and waited for RELOADING=1 ... READY=1: no polling needed
    assert.match((await get()) ?? '', /hello four/);
    assert.equal((await systemctl('stop', unit)).code, 0);
  });

  it('a bad config fails the start before READY with exit status 78', async () => {
    await rm(EXIT_FILE, { force: true });
    const bad = '/run/hp-tiny-bad.toml';
    await writeFile(bad, `listen = "127.0.0.1:${PORT}"\ngreeting = 42\nunknown_key = true\n`);
    const r = await runner!.run(startArgv(`${UNIT}-bad`, bad, true), {
      timeoutMs: 330_000,
      okCodes: [0, 1],
    });
    assert.equal(r.code, 1, 'systemd-run reports the failed start');
    assert.equal((await readFile(EXIT_FILE, 'utf8')).trim(), 'exited 78');
    assert.equal(await state(`${UNIT}-bad`), 'failed');
  });
});
