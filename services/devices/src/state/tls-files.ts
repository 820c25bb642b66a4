/**
 * The simulator's TLS material in its state folder: a self-signed CA made on
 * first start (ca.pem, which ingestion trusts, and ca-key.pem) and a server
 * certificate it signs (server.pem, server-key.pem) for localhost, 127.0.0.1,
 * ::1 and any extra names. Later starts reuse the files; the server
 * certificate alone is made again when it is missing, no longer matches the
 * CA or the names, or is near its end. Keys are written 0600.
 */
import 'reflect-metadata'; // @peculiar/x509's dependency injection (tsyringe) needs it loaded first
import { createPrivateKey, randomBytes, webcrypto, X509Certificate, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { ensureDir, readIfExists, writeFileAtomic } from './files.ts';

x509.cryptoProvider.set(webcrypto);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
const CA_DAYS = 3650;
const SERVER_DAYS = 397;
/** A server certificate with less left than this is made again. */
const RENEW_BEFORE_DAYS = 30;
/** Names every server certificate carries. */
export const DEFAULT_NAMES = ['localhost', '127.0.0.1', '::1'] as const;

/** PEM texts for the HTTPS server and its clients. */
export interface TlsMaterial {
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
  readonly caPath: string;
  /** What had to be made on this start. */
  readonly created: { readonly ca: boolean; readonly server: string | undefined };
}

function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f; // a positive INTEGER
  return bytes.toString('hex');
}

async function privatePem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/** Imports a PEM key as a WebCrypto signing key; only ECDSA P-256 (what this module makes) is accepted. */
async function signingKey(pem: string, path: string): Promise<{ key: CryptoKey; object: KeyObject }> {
  const object = createPrivateKey(pem);
  if (object.asymmetricKeyType !== 'ec' || object.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new Error(`${path}: the CA key must be ECDSA P-256 (move the CA files away to let the simulator make a new CA)`);
  }
  const der = object.export({ format: 'der', type: 'pkcs8' });
  const key = await webcrypto.subtle.importKey('pkcs8', der, ALGORITHM, false, ['sign']);
  return { key, object };
}

async function makeCa(now: number): Promise<{ certPem: string; keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: 'CN=flatline devices CA, O=flatline',
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + CA_DAYS * DAY_MS),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await privatePem(keys.privateKey) };
}

async function makeServer(caPem: string, caKey: CryptoKey, names: readonly string[], now: number): Promise<{ certPem: string; keyPem: string }> {
  const ca = new x509.X509Certificate(caPem);
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: 'CN=flatline devices, O=flatline',
    issuer: ca.subject,
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + SERVER_DAYS * DAY_MS),
    signingAlgorithm: ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names.map((n) => (isIP(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n }))),
      await x509.AuthorityKeyIdentifierExtension.create(ca),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await privatePem(keys.privateKey) };
}

/** Why the server certificate must be made again, or undefined when it is still good. */
function serverCertProblem(ca: X509Certificate, certPem: string | undefined, keyPem: string | undefined, names: readonly string[], now: number): string | undefined {
  if (certPem === undefined || keyPem === undefined) return 'missing';
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) return 'key does not match';
  } catch (err) {
    return `unreadable (${(err as Error).message})`;
  }
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return 'not signed by the current CA';
  if (new Date(cert.validTo).getTime() - now < RENEW_BEFORE_DAYS * DAY_MS) return 'near its end';
  const missing = names.find((n) => (isIP(n) ? cert.checkIP(n) : cert.checkHost(n, { wildcards: false })) === undefined);
  if (missing !== undefined) return `does not name ${missing}`;
  return undefined;
}

/** Loads the TLS material from stateDir, making whatever is missing (see the module comment). */
export async function ensureTlsMaterial(stateDir: string, extraNames: readonly string[], now = Date.now()): Promise<TlsMaterial> {
  ensureDir(stateDir);
  const paths = { ca: join(stateDir, 'ca.pem'), caKey: join(stateDir, 'ca-key.pem'), cert: join(stateDir, 'server.pem'), key: join(stateDir, 'server-key.pem') };
  const names = [...new Set([...DEFAULT_NAMES, ...extraNames])];

  let caPem = readIfExists(paths.ca);
  let caKeyPem = readIfExists(paths.caKey);
  let createdCa = false;
  if (caPem === undefined && caKeyPem === undefined) {
    ({ certPem: caPem, keyPem: caKeyPem } = await makeCa(now));
    writeFileAtomic(paths.caKey, caKeyPem, 0o600);
    writeFileAtomic(paths.ca, caPem, 0o644);
    createdCa = true;
  } else if (caPem === undefined || caKeyPem === undefined) {
    // A new CA would silently break every client that trusts the old ca.pem.
    throw new Error(`${caPem === undefined ? paths.ca : paths.caKey} is missing but ${caPem === undefined ? paths.caKey : paths.ca} exists: restore it, or remove both to make a new CA (clients must then trust the new ca.pem)`);
  }
  const ca = new X509Certificate(caPem);
  const caKey = await signingKey(caKeyPem, paths.caKey);
  if (!ca.checkPrivateKey(caKey.object)) throw new Error(`${paths.caKey} is not the key of ${paths.ca}`);
  if (new Date(ca.validTo).getTime() <= now) throw new Error(`the CA in ${paths.ca} expired on ${ca.validTo}: remove ca.pem and ca-key.pem to make a new one`);

  let certPem = readIfExists(paths.cert);
  let keyPem = readIfExists(paths.key);
  const problem = serverCertProblem(ca, certPem, keyPem, names, now);
  if (problem !== undefined) {
    ({ certPem, keyPem } = await makeServer(caPem, caKey.key, names, now));
    writeFileAtomic(paths.key, keyPem, 0o600);
    writeFileAtomic(paths.cert, certPem, 0o644);
  }
  return { caPem, certPem: certPem!, keyPem: keyPem!, caPath: paths.ca, created: { ca: createdCa, server: problem } };
}
