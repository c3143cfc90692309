// A small X.509 PKI: a self-signed CA and the certificates it issues, for scripts/generate-certs
// and per-session credentials. Keys come from node:crypto (native, off the main thread); forge
// only builds and signs the certificates.
import { generateKeyPair, randomBytes } from 'node:crypto';
import { chmod, mkdir, open, rename, unlink } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import forge from 'node-forge';

const generateKeyPairAsync = promisify(generateKeyPair);

/** PEM-encoded certificate and its private key (PKCS#8). */
export interface Credentials {
  certPem: string;
  keyPem: string;
}

export interface CAOptions {
  commonName: string;
  organizations?: readonly string[];
  /** RSA modulus size; default 4096 */
  bits?: number;
  /** validity in days; default 3650 */
  days?: number;
}

export type CertificateUsage = 'server' | 'client' | 'both';

export interface IssueOptions {
  ca: Credentials;
  commonName: string;
  /** subject O= values; hostplane reads them as groups */
  organizations?: readonly string[];
  /** subject OU= values: labels that are not groups (e.g. the session a certificate is for) */
  organizationalUnits?: readonly string[];
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  usage: CertificateUsage;
  /** RSA modulus size; default 2048 */
  bits?: number;
  /** validity in days; default 825 (the longest most TLS clients accept for a leaf) */
  days?: number;
}

// certificates start a little in the past so a peer whose clock lags slightly accepts them
const BACKDATE_MS = 5 * 60_000;
const DAY_MS = 86_400_000;

async function rsaKey(bits: number): Promise<{ keyPem: string; key: forge.pki.rsa.PrivateKey }> {
  const { privateKey } = await generateKeyPairAsync('rsa', {
    modulusLength: bits,
    publicExponent: 0x10001,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return {
    keyPem: privateKey,
    key: forge.pki.privateKeyFromPem(privateKey),
  };
}

function publicKeyOf(key: forge.pki.rsa.PrivateKey): forge.pki.rsa.PublicKey {
  return forge.pki.setRsaPublicKey(key.n, key.e);
}

/** 128 random bits, hex, with a leading 0x01 byte so the DER integer is positive and never 0. */
function serialNumber(): string {
  return `01${randomBytes(16).toString('hex')}`;
}

function subject(
  commonName: string,
  organizations: readonly string[] = [],
  units: readonly string[] = [],
): forge.pki.CertificateField[] {
  // UTF8String (RFC 5280 4.1.2.6), not forge's default PrintableString, which has no '@', '_'
  // or anything outside ASCII
  const utf8 = (name: string, value: string): forge.pki.CertificateField => ({
    name,
    value,
    // @types/node-forge calls this an asn1.Class; forge compares it with asn1.Type values
    valueTagClass: forge.asn1.Type.UTF8 as unknown as forge.asn1.Class,
  });
  return [
    ...organizations.map((o) => utf8('organizationName', o)),
    ...units.map((u) => utf8('organizationalUnitName', u)),
    utf8('commonName', commonName),
  ];
}

function newCertificate(
  pub: forge.pki.rsa.PublicKey,
  days: number,
  subj: forge.pki.CertificateField[],
): forge.pki.Certificate {
  if (!Number.isFinite(days) || days <= 0)
    throw new Error(`validity of ${days} days is not positive`);
  const cert = forge.pki.createCertificate();
  cert.publicKey = pub;
  cert.serialNumber = serialNumber();
  const now = Date.now();
  cert.validity.notBefore = new Date(now - BACKDATE_MS);
  cert.validity.notAfter = new Date(now + days * DAY_MS);
  cert.setSubject(subj);
  return cert;
}

/** A self-signed CA: BasicConstraints CA:true (critical), keyCertSign/cRLSign, SKI/AKI. */
export async function createCA(opts: CAOptions): Promise<Credentials> {
  const { keyPem, key } = await rsaKey(opts.bits ?? 4096);
  const subj = subject(opts.commonName, opts.organizations);
  const cert = newCertificate(publicKeyOf(key), opts.days ?? 3650, subj);
  cert.setIssuer(subj);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
    // self-signed: the authority key is the subject key
    {
      name: 'authorityKeyIdentifier',
      keyIdentifier: cert.generateSubjectKeyIdentifier().getBytes(),
    },
  ]);
  cert.sign(key, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem };
}

/** A leaf certificate signed by `ca`, with key usages fitting `usage` and the given SANs. */
export async function issueCertificate(opts: IssueOptions): Promise<Credentials> {
  let caCert: forge.pki.Certificate;
  let caKey: forge.pki.rsa.PrivateKey;
  try {
    caCert = forge.pki.certificateFromPem(opts.ca.certPem);
    caKey = forge.pki.privateKeyFromPem(opts.ca.keyPem);
  } catch (err) {
    throw new Error(`issuing certificate for ${opts.commonName}: reading the CA: ${String(err)}`, {
      cause: err,
    });
  }
  const { keyPem, key } = await rsaKey(opts.bits ?? 2048);
  const cert = newCertificate(
    publicKeyOf(key),
    opts.days ?? 825,
    subject(opts.commonName, opts.organizations, opts.organizationalUnits),
  );
  cert.setIssuer(caCert.subject.attributes);

  const altNames: { type: number; value?: string; ip?: string }[] = [];
  for (const dns of opts.dnsNames ?? []) altNames.push({ type: 2, value: dns });
  for (const ip of opts.ipAddresses ?? []) {
    if (isIP(ip) === 0) {
      throw new Error(
        `issuing certificate for ${opts.commonName}: ${JSON.stringify(ip)} is not an IP address`,
      );
    }
    altNames.push({ type: 7, ip });
  }
  const server = opts.usage === 'server' || opts.usage === 'both';
  const client = opts.usage === 'client' || opts.usage === 'both';
  const caSki = caCert.generateSubjectKeyIdentifier().getBytes();
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: server, clientAuth: client },
    ...(altNames.length > 0 ? [{ name: 'subjectAltName', altNames }] : []),
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caSki },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem };
}

export interface WriteOptions {
  /** mode of certificates and other public files; default 0644 */
  mode?: number;
  /** mode of private keys (any file whose content holds a PEM private key); default 0600 */
  keyMode?: number;
  /** mode of `dir` when it has to be created; default 0755 */
  dirMode?: number;
}

/**
 * Writes `files` (name → PEM) into `dir`, each atomically (temp file, then rename), private keys
 * with `keyMode` from the moment they exist. Returns the paths written.
 */
export async function writeCredentials(
  dir: string,
  files: Readonly<Record<string, string>>,
  opts: WriteOptions = {},
): Promise<string[]> {
  await mkdir(dir, { recursive: true, mode: opts.dirMode ?? 0o755 });
  const written: string[] = [];
  for (const [name, content] of Object.entries(files)) {
    if (name.includes('/') || name === '' || name === '.' || name === '..') {
      throw new Error(`writing credentials to ${dir}: ${JSON.stringify(name)} is not a file name`);
    }
    const file = path.join(dir, name);
    const mode = /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(content)
      ? (opts.keyMode ?? 0o600)
      : (opts.mode ?? 0o644);
    const tmp = path.join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      const fh = await open(tmp, 'wx', mode);
      try {
        // the umask may have narrowed the mode at creation; set it exactly before writing
        await fh.chmod(mode);
        await fh.writeFile(content);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, file);
      await chmod(file, mode);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw new Error(`writing ${file}: ${(err as Error).message}`, { cause: err });
    }
    written.push(file);
  }
  return written;
}
