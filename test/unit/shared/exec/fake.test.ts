import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FakeRunner } from '../../../../shared/exec/fake.ts';
import { ExecError } from '../../../../shared/exec/index.ts';

describe('FakeRunner', () => {
  it('records argv and answers from prefix rules, the latest rule first', async () => {
    const f = new FakeRunner().on(['/usr/sbin/ip'], { stdout: 'any' }).on(['/usr/sbin/ip', '-j'], {
      stdout: '[]',
    });
    assert.equal((await f.run(['/usr/sbin/ip', '-j', 'link'])).stdout, '[]');
    assert.equal((await f.run(['/usr/sbin/ip', 'link'])).stdout, 'any');
    assert.deepEqual(f.argvs(), ['/usr/sbin/ip -j link', '/usr/sbin/ip link']);
  });

  it('rejects with an ExecError for an exit code the call did not accept', async () => {
    const f = new FakeRunner().on(['/bin/x'], {
      code: 2,
      stderr: 'RTNETLINK answers: File exists\n',
    });
    await assert.rejects(f.run(['/bin/x', 'a']), (err: unknown) => {
      assert.ok(err instanceof ExecError);
      assert.equal(err.message, '/bin/x a: exited 2: RTNETLINK answers: File exists');
      assert.equal(err.code, 2);
      return true;
    });
    assert.equal((await f.run(['/bin/x'], { okCodes: [2] })).code, 2);
  });

  it('rejects calls nothing was scripted for', async () => {
    const f = new FakeRunner((argv) => (argv[0] === '/bin/true' ? {} : undefined));
    assert.equal((await f.run(['/bin/true'])).code, 0);
    await assert.rejects(f.run(['/bin/false']), /no answer scripted for \/bin\/false/);
  });
});
