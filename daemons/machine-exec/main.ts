// machine-exec: a console on a machine through exec-gateway. See `machine-exec --help`.
import { runCli } from './run.ts';

const stdin = process.stdin;
const isTerminal = stdin.isTTY && process.stdout.isTTY;
const code = await runCli(process.argv.slice(2), {
  stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  ...(isTerminal
    ? {
        terminal: {
          size: () => ({ cols: process.stdout.columns, rows: process.stdout.rows }),
          setRawMode: (on: boolean) => {
            stdin.setRawMode(on);
          },
          onResize: (fn: () => void) => {
            process.stdout.on('resize', fn);
            return () => {
              process.stdout.off('resize', fn);
            };
          },
        },
      }
    : {}),
});
// an open stdin (a terminal, a pipe nobody closed) would keep the process alive after the session;
// exitCode rather than exit() lets stdout (a pipe) drain first.
stdin.destroy();
process.exitCode = code;
