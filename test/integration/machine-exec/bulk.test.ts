// Large outputs through the chain: backpressure must pause and resume the console, never stall.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connectExec } from '../../../shared/stream/client.ts';
import { startChain, type Chain } from './fixture.ts';

const SIZE = 48 * 1024 * 1024;

describe('bulk output', () => {
  let chain: Chain;
  before(async () => {
    chain = await startChain([
      {
        name: 'bulk',
        target: `{ type = "sandbox", command = ["/usr/bin/head", "-c", "${SIZE}", "/dev/zero"] }`,
      },
    ]);
  });
  after(async () => {
    await chain.close();
  });

  it('delivers 48 MiB of output intact through the chain, then the exit status', async () => {
    let bytes = 0;
    let nonZero = 0;
    const s = await connectExec(
      chain.gatewayUrl +
        '/apis/compute.ironcore.dev/namespaces/default/machines/bulk/exec?tty=false',
      {
        tls: chain.alice,
        onOutput: (_ch, d) => {
          bytes += d.length;
          if (d.some((b) => b !== 0)) nonZero++;
        },
      },
    );
    s.closeStdin();
    assert.deepEqual(await s.status, { kind: 'exited', code: 0 });
    assert.equal(bytes, SIZE);
    assert.equal(nonZero, 0);
  });
});
