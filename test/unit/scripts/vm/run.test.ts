import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { qemuArgv, renderRunScript, shellQuote } from '../../../../scripts/vm/run.ts';

describe('VM run plan', () => {
  it('shell quoting leaves plain words alone and single-quotes the rest', () => {
    assert.equal(shellQuote('test/vm/a.test.ts'), 'test/vm/a.test.ts');
    assert.equal(shellQuote('--x=1'), '--x=1');
    assert.equal(shellQuote('a b'), "'a b'");
    assert.equal(shellQuote("it's"), "'it'\\''s'");
    assert.equal(shellQuote('$(reboot)'), "'$(reboot)'");
    assert.equal(shellQuote(''), "''");
  });

  it('an argv command becomes an exec of the quoted words after the exported environment', () => {
    assert.equal(
      renderRunScript(['/usr/bin/node', '-e', 'console.log("hi there")'], {
        HOSTPLANE_IN_VM: '1',
        X: 'a b',
      }),
      [
        '#!/bin/bash',
        '# written by scripts/vm/run.ts',
        'export HOSTPLANE_IN_VM=1',
        "export X='a b'",
        `exec /usr/bin/node -e 'console.log("hi there")'`,
        '',
      ].join('\n'),
    );
  });

  it('a script command is kept as written', () => {
    assert.equal(
      renderRunScript('cd /mnt/host\nnpm test'),
      '#!/bin/bash\n# written by scripts/vm/run.ts\ncd /mnt/host\nnpm test\n',
    );
  });

  it('environment names that are not shell identifiers are refused', () => {
    assert.throws(() => renderRunScript(['/bin/true'], { 'A;reboot': '1' }), /invalid env name/);
  });

  it('qemu runs TCG without network, the disk as a qcow2 overlay, and both 9p shares', () => {
    const argv = qemuArgv({
      image: {
        dir: '/c',
        vmlinux: '/c/vmlinux',
        initramfs: '/c/initramfs.img',
        image: '/c/image.ext4',
      },
      overlay: '/r/overlay.qcow2',
      share: '/work/main',
      ctl: '/r/ctl',
      consoleLog: '/r/console.log',
      memoryMb: 2048,
      cpus: 2,
    });
    const text = argv.join(' ');
    assert.equal(argv[0], '/usr/bin/qemu-system-x86_64');
    assert.match(text, / -accel tcg,thread=multi /);
    assert.match(text, / -nic none /);
    assert.match(text, / -kernel \/c\/vmlinux -initrd \/c\/initramfs.img /);
    assert.match(text, / -drive file=\/r\/overlay.qcow2,if=virtio,format=qcow2 /);
    assert.match(text, /local,path=\/work\/main,mount_tag=host0,/);
    assert.match(text, /local,path=\/r\/ctl,mount_tag=ctl,/);
    assert.match(text, / -serial file:\/r\/console.log$/);
    assert.equal(text.includes('image.ext4'), false, 'the base image is never written by a run');
  });
});
