// machine-exec: a console on a machine through exec-gateway. See `machine-exec --help`.
import { openSync } from 'node:fs';
import tty from 'node:tty';
import { runCli, type CliIo } from './run.ts';

const stdin = process.stdin;
// The window size comes from whichever of stdout, stderr and /dev/tty is a terminal, so that
// `machine-exec --tty ns/m | tee log` still has one.
function windowOf(): tty.WriteStream | undefined {
  if (process.stdout.isTTY) return process.stdout;
  if (process.stderr.isTTY) return process.stderr;
  try {
    return new tty.WriteStream(openSync('/dev/tty', 'w'));
  } catch {
    return undefined;
  }
}
const window = stdin.isTTY ? windowOf() : undefined;
// whether the session has the terminal raw, for a stop from outside (kill -TSTP; Ctrl+Z itself
// goes to the remote): the shell gets its terminal back cooked, and raw again on SIGCONT
let raw = false;
const terminal: CliIo['terminal'] = stdin.isTTY
  ? {
      output: process.stdout.isTTY,
      size: () => {
        const [cols, rows] = window?.getWindowSize() ?? [80, 24];
        return { cols, rows };
      },
      setRawMode: (on: boolean) => {
        raw = on;
        stdin.setRawMode(on);
      },
      onResize: (fn: () => void) => {
        process.on('SIGWINCH', fn);
        return () => {
          process.off('SIGWINCH', fn);
        };
      },
    }
  : undefined;
if (terminal !== undefined) {
  process.on('SIGTSTP', () => {
    if (raw) stdin.setRawMode(false);
    process.kill(process.pid, 'SIGSTOP');
  });
  process.on('SIGCONT', () => {
    if (!raw) return;
    stdin.setRawMode(true);
    process.kill(process.pid, 'SIGWINCH'); // the window may have changed meanwhile
  });
}
// SIGHUP and SIGQUIT would leave the terminal raw (node restores it only on SIGINT and SIGTERM):
// they end the session instead, and runCli restores the terminal and resolves to 128 + n.
const stop = new AbortController();
const onSignal = (sig: NodeJS.Signals): void => {
  stop.abort(sig);
};
process.once('SIGHUP', onSignal);
process.once('SIGQUIT', onSignal);
const code = await runCli(
  process.argv.slice(2),
  {
    stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    ...(terminal === undefined ? {} : { terminal }),
  },
  stop.signal,
);
// an open stdin (a terminal, a pipe nobody closed) would keep the process alive after the session;
// exitCode rather than exit() lets stdout (a pipe) drain first.
stdin.destroy();
if (window !== undefined && window !== process.stdout && window !== process.stderr)
  window.destroy();
process.exitCode = code;
