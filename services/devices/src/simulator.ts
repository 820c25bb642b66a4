/**
 * The simulator as one unit: credentials, TLS material and timeline from the
 * state folder, then the device API (HTTPS), the control API (loopback
 * HTTP) and /metrics. main.ts runs it as a process; tests start it here on
 * port 0.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { ConfigError, loadCredentials, type CredentialsMap, type Logger, createMetrics, serveMetrics, type MetricsServer, withPort } from '@flatline/platform';
import { BasicAuth } from './basic-auth.ts';
import type { DevicesConfig } from './config.ts';
import { createDevicesMetrics } from './devices-metrics.ts';
import { BehaviourTable } from './domain/behaviours.ts';
import { deviceCatalogue } from './domain/meters.ts';
import { controlApi } from './http/control-api.ts';
import { deviceApi } from './http/device-api.ts';
import { closeGracefully, isLoopbackAddress, listen } from './http/listen.ts';
import { loadTimeline } from './state/epoch-file.ts';
import { ensureTlsMaterial } from './state/tls-files.ts';

/** Idle keep-alive connections (ingestion keeps them open between polls) last this long. */
const KEEP_ALIVE_MS = 65_000;
/** A client has this long to send its request headers. */
const HEADERS_TIMEOUT_MS = 10_000;
/** …and its whole request (GETs have no body). */
const REQUEST_TIMEOUT_MS = 30_000;

/** A running simulator. */
export interface RunningSimulator {
  /** host:port of each server, with the bound port. */
  readonly https: string;
  readonly control: string;
  readonly metrics: string;
  /** Number of flats simulated. */
  readonly flats: number;
  /** The CA certificate clients must trust, and its path. */
  readonly caPem: string;
  readonly caPath: string;
  /** Graceful stop: answers in flight get the configured grace, then connections are destroyed. */
  close(): Promise<void>;
}

/** Starts the simulator; a bad credentials file or control address is a ConfigError naming its variable. */
export async function startSimulator(config: DevicesConfig, logger: Logger): Promise<RunningSimulator> {
  const controlHost = config.controlListen.slice(0, config.controlListen.lastIndexOf(':'));
  if (!isLoopbackAddress(controlHost)) {
    throw new ConfigError('FLATLINE_DEVICES_CONTROL_LISTEN', `the control port binds only a loopback host (127.0.0.1, [::1], localhost), got ${JSON.stringify(config.controlListen)}`);
  }
  let credentials: CredentialsMap;
  try {
    credentials = loadCredentials(config.credentialsPath);
  } catch (err) {
    throw new ConfigError('FLATLINE_DEVICES_CREDENTIALS', `${(err as Error).message} (the stack writes this file; the simulator never makes one)`);
  }
  const auth = new BasicAuth(credentials, config.scrapeCredential);

  const tls = await ensureTlsMaterial(config.stateDir, config.tlsNames);
  if (tls.created.ca) logger.info({ ca: tls.caPath }, 'created a new CA: clients must trust this ca.pem');
  if (tls.created.server !== undefined) logger.info({ reason: tls.created.server }, 'made a new server certificate');
  const { timeline, path: epochPath, change } = loadTimeline(config.stateDir, config.periodMs, Date.now());
  if (change !== 'unchanged') logger.info({ epoch: new Date(timeline[0]!.startMs).toISOString(), file: epochPath, change, periodMs: config.periodMs }, 'timeline');

  const behaviours = new BehaviourTable();
  const registry = createMetrics('devices').registry;
  const metrics = createDevicesMetrics(registry, auth.size, () => behaviours.size);

  const https: HttpsServer = createHttpsServer(
    { key: tls.keyPem, cert: tls.certPem, minVersion: 'TLSv1.2', keepAliveTimeout: KEEP_ALIVE_MS, headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS },
    deviceApi({ auth, behaviours, metrics, logger, measurements: { timeline, devices: deviceCatalogue(config.devicesPerFlat), windowMs: config.windowMs } }),
  );
  https.on('tlsClientError', (err) => logger.debug({ err: err.message }, 'TLS handshake failed'));
  const control: HttpServer = createHttpServer(controlApi({ behaviours, isKnownFlat: (id) => auth.has(id), logger }));

  let metricsServer: MetricsServer | undefined;
  const stop = async (): Promise<void> => {
    await Promise.all([closeGracefully(https, config.shutdownGraceMs), closeGracefully(control, config.shutdownGraceMs), metricsServer?.close()]);
  };
  try {
    const httpsPort = await listen(https, config.listen, 'the device API (HTTPS)');
    const controlPort = await listen(control, config.controlListen, 'the control API');
    metricsServer = await serveMetrics(config.metricsListen, registry, logger);
    return {
      https: withPort(config.listen, httpsPort),
      control: withPort(config.controlListen, controlPort),
      metrics: withPort(config.metricsListen, metricsServer.port),
      flats: auth.size,
      caPem: tls.caPem,
      caPath: tls.caPath,
      close: stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
