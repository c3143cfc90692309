// Input backpressure on the server side of an exec stream: a console that takes no input makes
// the WebSocket stop reading (TCP then pushes back to the client) instead of the daemon buffering
// whatever the client sends.
import type { WebSocket } from 'ws';

/** While input is paused: how often the client is pinged, so that a client that left is noticed. */
export const INPUT_HEARTBEAT_MS = 10_000;

/** Pauses `ws` until its input may flow again; a second call while paused does nothing. */
export interface InputGate {
  /** stop reading `ws` until `onceDrained` calls back */
  pause(onceDrained: (fn: () => void) => void): void;
  /** clears the heartbeat; call when `ws` closes */
  close(): void;
}

export function inputGate(ws: WebSocket, heartbeatMs = INPUT_HEARTBEAT_MS): InputGate {
  let paused = false;
  let heartbeat: NodeJS.Timeout | undefined;
  return {
    pause(onceDrained) {
      if (paused) return;
      paused = true;
      ws.pause();
      // a paused socket does not see its peer leave; a ping to a peer that is gone fails and
      // closes the socket, which ends the session as any client that leaves does
      heartbeat = setInterval(() => {
        if (ws.readyState === ws.OPEN) ws.ping();
      }, heartbeatMs);
      onceDrained(() => {
        paused = false;
        clearInterval(heartbeat);
        ws.resume();
      });
    },
    close() {
      clearInterval(heartbeat);
    },
  };
}
