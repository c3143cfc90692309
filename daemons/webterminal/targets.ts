// How each target type starts its console.
import type { Logger } from '../../shared/log/index.ts';
import { startMachine, type MachineDeps } from './machine.ts';
import { startSandbox, type SandboxDeps } from './sandbox.ts';
import type { StartTarget } from './sessions.ts';

/** The StartTarget of the daemon: sandboxes, and machines through exec-gateway when `machine` is given. */
export function targetStarter(
  sandbox: SandboxDeps,
  log: Logger,
  machine?: MachineDeps,
): StartTarget {
  return async (target, session, size) => {
    const slog = log.child({ session: session.id, user: session.user.user, target: target.name });
    switch (target.type) {
      case 'sandbox':
        return startSandbox(sandbox, target, session.id, size, slog);
      case 'machine':
        if (machine === undefined) {
          throw new Error(
            `opening machine ${target.namespace}/${target.machine}: machine targets are not configured`,
          );
        }
        return startMachine(machine, target, session, size, slog);
    }
  };
}
