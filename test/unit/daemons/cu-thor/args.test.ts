import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_SERVER, EXIT, parseCli, parseSize } from '../../../../daemons/cu-thor/args.ts';

const HOME = '/home/alice';

describe('cu-thor command line', () => {
  it('start passes the arguments after --command to the command', () => {
    const inv = parseCli(['start', '--command', 'head', '/dev/random'], {}, HOME);
    assert.ok(inv.kind === 'run' && inv.command === 'start');
    assert.equal(inv.program, 'head');
    assert.deepEqual(inv.args, ['/dev/random']);
    assert.deepEqual(inv.limits, {});
  });

  it('start passes dash arguments given after --', () => {
    const inv = parseCli(['start', '--command', 'head', '--', '-n10', '/dev/random'], {}, HOME);
    assert.ok(inv.kind === 'run' && inv.command === 'start');
    assert.deepEqual(inv.args, ['-n10', '/dev/random']);
  });

  it('start without --command is a usage error', () => {
    const inv = parseCli(['start', 'ls'], {}, HOME);
    assert.deepEqual(inv, { kind: 'usage-error', message: 'start needs --command COMMAND' });
  });

  it('a dash argument before -- is a usage error, not silently dropped', () => {
    const inv = parseCli(['start', '--command', 'ls', '-la'], {}, HOME);
    assert.equal(inv.kind, 'usage-error');
  });

  it('start takes limits with size suffixes', () => {
    const inv = parseCli(
      [
        'start',
        '--command',
        'x',
        '--cpu-percent',
        '150',
        '--memory-max',
        '512M',
        '--pids-max',
        '64',
      ],
      {},
      HOME,
    );
    assert.ok(inv.kind === 'run' && inv.command === 'start');
    assert.deepEqual(inv.limits, {
      cpuPercent: 150,
      memoryMaxBytes: 512 * 1024 * 1024,
      pidsMax: 64,
    });
  });

  it('a limit that is not a number is a usage error', () => {
    const inv = parseCli(['start', '--command', 'x', '--cpu-percent', 'lots'], {}, HOME);
    assert.deepEqual(inv, {
      kind: 'usage-error',
      message: "--cpu-percent 'lots' is not a whole number from 1 to 4294967295",
    });
  });

  it('--pids-max and --cpu-percent above 4294967295 are usage errors, not wrapped on the uint32 wire', () => {
    for (const flag of ['--pids-max', '--cpu-percent']) {
      const inv = parseCli(['start', '--command', 'x', flag, '4294967297'], {}, HOME);
      assert.equal(inv.kind, 'usage-error', `${flag} 4294967297`);
    }
    const max = parseCli(['start', '--command', 'x', '--pids-max', '4294967295'], {}, HOME);
    assert.equal(max.kind === 'run' && max.command === 'start' && max.limits.pidsMax, 4294967295);
  });

  for (const command of ['stop', 'status', 'output'] as const) {
    it(`${command} needs --id`, () => {
      assert.deepEqual(parseCli([command], {}, HOME), {
        kind: 'usage-error',
        message: `${command} needs --id ID`,
      });
      const inv = parseCli([command, '--id', 'abc'], {}, HOME);
      assert.ok(inv.kind === 'run' && inv.command === command);
      assert.equal(inv.id, 'abc');
    });
  }

  it('an option that belongs to another command is a usage error', () => {
    assert.deepEqual(parseCli(['list', '--id', 'x'], {}, HOME), {
      kind: 'usage-error',
      message: 'list does not take --id',
    });
    assert.deepEqual(parseCli(['output', '--id', 'x', '--json'], {}, HOME), {
      kind: 'usage-error',
      message: 'output does not take --json',
    });
  });

  it('list and status take --json', () => {
    const list = parseCli(['list', '--json'], {}, HOME);
    assert.ok(list.kind === 'run' && list.json);
    const status = parseCli(['status', '--id', 'x', '--json'], {}, HOME);
    assert.ok(status.kind === 'run' && status.json);
  });

  it('an unknown command or no command at all is a usage error', () => {
    assert.equal(parseCli(['frobnicate'], {}, HOME).kind, 'usage-error');
    assert.equal(parseCli([], {}, HOME).kind, 'usage-error');
  });

  it('--help and -h print the top-level usage, or a command usage after a command', () => {
    for (const flag of ['--help', '-h']) {
      const top = parseCli([flag], {}, HOME);
      assert.ok(top.kind === 'help' && top.text.startsWith('Usage: cu-thor <command>'));
    }
    const start = parseCli(['start', '-h'], {}, HOME);
    assert.ok(start.kind === 'help' && start.text.startsWith('Usage: cu-thor start'));
  });

  it('the server is --server, else $CUTHOR_SERVER, else localhost:50051', () => {
    const pick = (argv: string[], env: NodeJS.ProcessEnv): string => {
      const inv = parseCli(argv, env, HOME);
      assert.ok(inv.kind === 'run');
      return inv.server;
    };
    assert.equal(pick(['list'], {}), DEFAULT_SERVER);
    assert.equal(pick(['list'], { CUTHOR_SERVER: 'h:1' }), 'h:1');
    assert.equal(pick(['list', '--server', 'x:2'], { CUTHOR_SERVER: 'h:1' }), 'x:2');
    assert.equal(pick(['--server', 'x:3', 'list'], {}), 'x:3');
  });

  it('a server without a port is a usage error', () => {
    assert.equal(parseCli(['list', '--server', 'example'], {}, HOME).kind, 'usage-error');
  });

  it('credentials come from ~/.cu-thor/creds unless CUTHOR_CLIENT_CRED_LOCATION is set', () => {
    const home = parseCli(['list'], {}, HOME);
    assert.ok(home.kind === 'run');
    assert.equal(home.credDir, '/home/alice/.cu-thor/creds');
    const env = parseCli(['list'], { CUTHOR_CLIENT_CRED_LOCATION: '/etc/creds' }, HOME);
    assert.ok(env.kind === 'run');
    assert.equal(env.credDir, '/etc/creds');
  });

  it('sizes accept plain bytes and binary suffixes', () => {
    assert.equal(parseSize('4096'), 4096);
    assert.equal(parseSize('1k'), 1024);
    assert.equal(parseSize('2GiB'), 2 * 1024 ** 3);
    assert.equal(parseSize('1.5G'), undefined);
    assert.equal(parseSize('-1'), undefined);
  });

  it('exit codes are distinct for each kind of failure', () => {
    assert.equal(new Set(Object.values(EXIT)).size, Object.keys(EXIT).length);
  });
});
