// cu-thor: the command-line client of cu-thor-server. See `cu-thor --help`.
import { runCli } from './run.ts';

// grpc-js sends the target host as the TLS server name even when it is an IP address, which
// RFC 6066 forbids, and Node warns about it (DEP0123) on `--server 127.0.0.1:50051`. Nothing the
// user can act on: the certificate is still checked against the IP. Other warnings print as usual.
process.removeAllListeners('warning');
process.on('warning', (w: Error & { code?: string }) => {
  if (w.code === 'DEP0123') return;
  process.stderr.write(
    `cu-thor: warning: ${w.name}${w.code === undefined ? '' : ` ${w.code}`}: ${w.message}\n`,
  );
});

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
