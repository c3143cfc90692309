import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createRunner } from '../../../shared/exec/index.ts';
import { silentLogger } from '../../../shared/log/index.ts';
import { generate, rootFileName } from '../../../scripts/gen-proto.ts';

describe('gen-proto', () => {
  const dirs: string[] = [];
  after(async () => {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  it('names each root file after the proto path, so equal basenames stay apart', () => {
    for (const { proto, want } of [
      { proto: 'iri/machine/v1alpha1/api.proto', want: 'iri.machine.v1alpha1.api.ts' },
      { proto: 'jobexec/v1/jobexec.proto', want: 'jobexec.v1.jobexec.ts' },
      { proto: 'top.proto', want: 'top.ts' },
    ]) {
      assert.equal(rootFileName(proto), want, proto);
    }
    assert.notEqual(rootFileName('a/v1/api.proto'), rootFileName('b/v1/api.proto'));
  });

  it('generates one root file per proto when two share a basename', async () => {
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'gen-proto-test-'));
    dirs.push(tmp);
    const protoDir = path.join(tmp, 'proto');
    for (const pkg of ['alpha', 'beta']) {
      await mkdir(path.join(protoDir, pkg, 'v1'), { recursive: true });
      await writeFile(
        path.join(protoDir, pkg, 'v1', 'api.proto'),
        `syntax = "proto3";\npackage ${pkg}.v1;\nmessage Ping { string id = 1; }\n` +
          `service ${pkg === 'alpha' ? 'Alpha' : 'Beta'} { rpc Call(Ping) returns (Ping); }\n`,
      );
    }
    const out = path.join(tmp, 'out');
    await generate(createRunner({ log: silentLogger(), allow: [process.execPath] }), out, protoDir);
    const roots = (await readdir(out)).filter((f) => f.endsWith('.ts')).sort();
    assert.deepEqual(roots, ['alpha.v1.api.ts', 'beta.v1.api.ts']);
    assert.match(await readFile(path.join(out, 'alpha.v1.api.ts'), 'utf8'), /Alpha/);
    assert.doesNotMatch(await readFile(path.join(out, 'alpha.v1.api.ts'), 'utf8'), /Beta/);
    assert.match(await readFile(path.join(out, 'beta.v1.api.ts'), 'utf8'), /Beta/);
  });
});
