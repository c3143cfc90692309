// cu-thor: the command-line client of cu-thor-server. See `cu-thor --help`.
import { runCli } from './run.ts';

const interrupted = new AbortController();
process.once('SIGINT', () => {
  interrupted.abort();
});
const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  signal: interrupted.signal,
});
// stdout may still hold buffered output (a pipe); exitCode lets it drain before exit.
process.exitCode = code;
