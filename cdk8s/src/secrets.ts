/**
 * Secret material derived from the settings' seed, never drawn at random:
 * synth must write the same bytes every time (a reviewable diff, a Tilt that
 * does not redeploy on every run), so each value is an HMAC of the seed and
 * its purpose. That includes the device CA: an ECDSA P-256 key derived from
 * the seed, and a certificate signed with a deterministic nonce (ECDSA's
 * usual random nonce would change the bytes on each run).
 */
import 'reflect-metadata'; // @peculiar/x509's dependency injection (tsyringe) needs it loaded first
import { createHash, createHmac, createPrivateKey, sign, webcrypto, type JsonWebKey, type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { JwtIssuer, Settings } from './settings.ts';

/** HMAC-SHA256 of purpose under the seed. */
function mac(s: Settings, purpose: string): Buffer {
  return createHmac('sha256', s.seed).update(purpose).digest();
}

/** A password (24 URL-safe characters: safe inside a MongoDB URI and a Basic-auth header). */
export function derivePassword(s: Settings, purpose: string): string {
  return mac(s, `password:${purpose}`).subarray(0, 18).toString('base64url');
}

/** The device credentials file (the shape of @flatline/platform/credentials.js): one user and password per flat. */
export function deviceCredentialsFile(s: Settings): string {
  const flats: Record<string, { username: string; password: string }> = {};
  for (let i = 1; i <= s.flats; i++) flats[String(i)] = { username: `flat-${i}`, password: derivePassword(s, `flat/${i}`) };
  return `${JSON.stringify({ version: 1, flats }, null, 1)}\n`;
}

/** The MongoDB replica set's internal key file (base64 text, 6–1024 characters). */
export function mongoKeyFile(s: Settings): string {
  return `${Buffer.concat([mac(s, 'mongo/keyfile/1'), mac(s, 'mongo/keyfile/2'), mac(s, 'mongo/keyfile/3')]).toString('base64')}\n`;
}

/** The key that signs query's ListMeasurements page tokens (HMAC): 43 URL-safe characters. */
export function pageTokenKey(s: Settings): string {
  return mac(s, 'query/page-token-key').toString('base64url');
}

/** epoch.json of the simulator (its state file format), fixed by the settings so every replica shares one timeline. */
export function devicesEpochFile(s: Settings): string {
  const startMs = Date.parse(s.devicesEpoch);
  if (!Number.isSafeInteger(startMs)) throw new Error(`devicesEpoch is not a date: ${s.devicesEpoch}`);
  const start = new Date(startMs).toISOString();
  return `${JSON.stringify({ version: 1, epoch: start, segments: [{ start, start_ms: startMs, period_ms: s.devicesPeriodMs }] }, null, 1)}\n`;
}

// P-256 (secp256r1): the group order n.
const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const DAY_MS = 86_400_000;
const CA_DAYS = 3650;

function toBigInt(bytes: Uint8Array): bigint {
  return BigInt(`0x${Buffer.from(bytes).toString('hex') || '0'}`);
}

function to32(n: bigint): Buffer {
  return Buffer.from(n.toString(16).padStart(64, '0'), 'hex');
}

/** A scalar in [1, n-1] from 32 pseudo-random bytes. */
function scalar(bytes: Uint8Array): bigint {
  return (toBigInt(bytes) % (N - 1n)) + 1n;
}

/** x^-1 mod n (n is prime: Fermat). */
function inverse(x: bigint): bigint {
  let result = 1n;
  let base = ((x % N) + N) % N;
  for (let e = N - 2n; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * base) % N;
    base = (base * base) % N;
  }
  return result;
}

/** The P-256 private key with scalar d (SEC1 DER without the public point, which OpenSSL derives). */
function p256Key(d: bigint): KeyObject {
  const der = Buffer.concat([Buffer.from('30310201010420', 'hex'), to32(d), Buffer.from('a00a06082a8648ce3d030107', 'hex')]);
  return createPrivateKey({ key: der, format: 'der', type: 'sec1' });
}

/** x of d·G: Node computes the public point of a key with scalar d. */
function pointX(d: bigint): bigint {
  const jwk = p256Key(d).export({ format: 'jwk' });
  return toBigInt(Buffer.from(jwk.x ?? '', 'base64url'));
}

/** ECDSA-SHA256 over data with key d and a nonce derived from d and the message (so, deterministic): r‖s, as WebCrypto returns it. */
function signDeterministic(d: bigint, data: Uint8Array): Buffer {
  const e = toBigInt(createHash('sha256').update(data).digest());
  for (let attempt = 0; ; attempt++) {
    const k = scalar(createHmac('sha256', to32(d)).update(`nonce:${attempt}:`).update(data).digest());
    const r = pointX(k) % N;
    const s = (inverse(k) * (e + r * d)) % N;
    if (r !== 0n && s !== 0n) return Buffer.concat([to32(r), to32(s)]);
  }
}

/** The device CA: its certificate (public: a ConfigMap) and its key (a Secret). */
export interface DeviceCa {
  readonly certPem: string;
  readonly keyPem: string;
}

/**
 * Makes the device CA from the seed, as the simulator's own CA would be
 * (ECDSA P-256, CA:true pathlen 0, keyCertSign|cRLSign, ten years), so the
 * simulator replicas sign their server certificates with one shared CA that
 * ingestion trusts.
 */
export async function deviceCa(s: Settings): Promise<DeviceCa> {
  const d = scalar(mac(s, 'devices/ca-key'));
  const key = p256Key(d);
  const jwk = key.export({ format: 'jwk' });
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const publicKey = await webcrypto.subtle.importKey('jwk', { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, ext: true }, algorithm, true, ['verify']);
  const privateKey = await webcrypto.subtle.importKey('jwk', { ...jwk, ext: true }, algorithm, false, ['sign']);
  const subtle = webcrypto.subtle;
  // WebCrypto everywhere except sign, whose nonce must not be random here.
  const crypto = {
    getRandomValues: webcrypto.getRandomValues.bind(webcrypto),
    subtle: {
      digest: subtle.digest.bind(subtle),
      exportKey: subtle.exportKey.bind(subtle),
      importKey: subtle.importKey.bind(subtle),
      verify: subtle.verify.bind(subtle),
      sign: async (_alg: unknown, _key: unknown, data: ArrayBuffer | ArrayBufferView) =>
        new Uint8Array(signDeterministic(d, data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength))).buffer,
    },
  } as unknown as webcrypto.Crypto;
  const notBefore = Date.parse(s.devicesCaNotBefore);
  if (!Number.isSafeInteger(notBefore)) throw new Error(`devicesCaNotBefore is not a date: ${s.devicesCaNotBefore}`);
  const serial = mac(s, 'devices/ca-serial').subarray(0, 16);
  serial[0] = (serial[0]! & 0x7f) | 0x01; // a positive INTEGER with no leading zero byte
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial.toString('hex'),
      name: 'CN=flatline devices CA, O=flatline',
      notBefore: new Date(notBefore),
      notAfter: new Date(notBefore + CA_DAYS * DAY_MS),
      signingAlgorithm: algorithm,
      keys: { publicKey, privateKey },
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return { certPem: `${cert.toString('pem')}\n`, keyPem: key.export({ format: 'pem', type: 'pkcs8' }).toString() };
}

/** The dev profile's JWT issuer (the `iss` of its tokens). */
export const DEV_JWT_ISSUER = 'flatline-dev-issuer';

function devJwtKey(s: Settings): { key: KeyObject; kid: string; jwk: JsonWebKey } {
  const key = p256Key(scalar(mac(s, 'query/dev-jwt-key')));
  const { x, y } = key.export({ format: 'jwk' });
  const kid = createHash('sha256').update(`${x}.${y}`).digest().subarray(0, 8).toString('base64url');
  return { key, kid, jwk: { kty: 'EC', crv: 'P-256', x, y, kid, alg: 'ES256', use: 'sig' } };
}

/**
 * The dev profile's own JWT issuer: an ES256 key derived from the seed, its
 * public half inline (no JWKS server to run or reach). With the public dev
 * seed anyone can mint its tokens (devToken): a dev cluster only.
 */
export function devJwtIssuer(s: Settings): JwtIssuer {
  return { issuer: DEV_JWT_ISSUER, jwks: JSON.stringify({ keys: [devJwtKey(s).jwk] }), audiences: [] };
}

/** Whether query's JWT issuer is the dev profile's, derived from the seed (none was configured). */
export function isDevJwtIssuer(s: Settings): boolean {
  return s.gateway.jwt === undefined && s.profile === 'dev';
}

/** The issuer whose tokens query accepts from outside the mesh: the configured one, or the dev profile's own. */
export function jwtIssuerOf(s: Settings): JwtIssuer {
  if (s.gateway.jwt !== undefined) return s.gateway.jwt;
  if (s.profile === 'dev') return devJwtIssuer(s);
  throw new Error('the production profile needs a JWT issuer (gateway.jwt)');
}

/**
 * A token of the dev profile's issuer for subject, valid ttlSeconds from
 * nowMs: what an operator of a dev cluster sends through the gateway
 * (`authorization: Bearer <token>`).
 */
export function devToken(s: Settings, options: { subject?: string; nowMs?: number; ttlSeconds?: number } = {}): string {
  if (!isDevJwtIssuer(s)) throw new Error('dev tokens exist only in the dev profile without a configured JWT issuer');
  const { key, kid } = devJwtKey(s);
  const iat = Math.floor((options.nowMs ?? Date.now()) / 1000);
  const part = (x: unknown) => Buffer.from(JSON.stringify(x)).toString('base64url');
  const signed = `${part({ alg: 'ES256', typ: 'JWT', kid })}.${part({ iss: DEV_JWT_ISSUER, sub: options.subject ?? 'dev-operator', iat, exp: iat + (options.ttlSeconds ?? 86_400) })}`;
  // JWS ES256 is r||s (IEEE P1363), not DER.
  const signature = sign('sha256', Buffer.from(signed), { key, dsaEncoding: 'ieee-p1363' });
  return `${signed}.${signature.toString('base64url')}`;
}
