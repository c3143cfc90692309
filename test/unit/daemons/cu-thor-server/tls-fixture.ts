// Throwaway certificates for in-process gRPC tests, from shared/pki (2048-bit CA to stay fast).
import { createCA, issueCertificate } from '../../../../shared/pki/index.ts';

export interface Issued {
  cert: string;
  key: string;
}

/** A CA with a server certificate (localhost, 127.0.0.1) and client certificates per CN. */
export async function makePki(clients: string[]): Promise<{
  ca: string;
  server: Issued;
  clients: Record<string, Issued>;
}> {
  const ca = await createCA({ commonName: 'test ca', bits: 2048, days: 1 });
  const [server, ...issued] = await Promise.all([
    issueCertificate({
      ca,
      commonName: 'localhost',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
      usage: 'server',
      days: 1,
    }),
    ...clients.map((cn) => issueCertificate({ ca, commonName: cn, usage: 'client', days: 1 })),
  ]);
  const out: Record<string, Issued> = {};
  for (const [i, cn] of clients.entries()) {
    const c = issued[i];
    if (c === undefined) throw new Error(`issuing test certificate for ${cn}: none made`);
    out[cn] = { cert: c.certPem, key: c.keyPem };
  }
  return { ca: ca.certPem, server: { cert: server.certPem, key: server.keyPem }, clients: out };
}
