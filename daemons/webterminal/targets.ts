// How each target type starts its console.
import type { Logger } from '../../shared/log/index.ts';
import { startSandbox, type SandboxDeps } from './sandbox.ts';
import type { StartTarget } from './sessions.ts';

/** The StartTarget of the daemon: sandboxes here; machine targets are not wired yet. */
export function targetStarter(sandbox: SandboxDeps, log: Logger): StartTarget {
  return async (target, session, size) => {
    const slog = log.child({ session: session.id, user: session.user.user, target: target.name });
    switch (target.type) {
      case 'sandbox':
        return startSandbox(sandbox, target, size, slog);
      case 'machine':
        throw new Error(
          `opening machine ${target.namespace}/${target.machine}: machine targets are not supported yet`,
        );
    }
  };
}
