/** Ingestion service: composition root (config → dependencies → server → signals). */
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { register as registerXds } from '@grpc/grpc-js-xds';
import { StorageServiceClient } from '@flatline/proto';
import { isXdsTarget, loadCredentials, GrpcHost, helpRequested, printHelp, onShutdownSignal, runMain, announceListening, createLogger, createMetrics, serveMetrics, createMongoClient, withPort } from '@flatline/platform';
import { DEFAULT_MESH, DeviceLinkSource, devicesRouteName, FaultSource, grpcFaultInterceptor, httpFaultInterceptor, createFaultCounter, Injector } from '@flatline/mesh';
import { INGESTION_ENV, loadConfig } from './config.ts';
import { DeviceClient } from './devices/device-client.ts';
import { IstioDeviceRoutes } from './devices/istio-routes.ts';
import { bucketOf } from './domain/flat-schedule.ts';
import { fallbackShare, LeaseManager } from './leases/lease-manager.ts';
import { createIngestionMetrics } from './metrics.ts';
import { Outbox } from './outbox/outbox.ts';
import { Poller } from './poller.ts';
import { Forwarder } from './storage/forwarder.ts';

const NAME = 'flatline-ingestion';
/** Share of FLATLINE_OUTBOX_MAX_BYTES from which health is NOT_SERVING. */
const OUTBOX_NOT_SERVING_FRACTION = 0.9;

runMain(NAME, async () => {
  if (helpRequested()) {
    return printHelp(NAME, 'Polls every flat\'s devices (HTTPS, or HTTP to a TLS-originating sidecar), keeps readings in a durable outbox and forwards them to storage.', INGESTION_ENV);
  }
  const config = loadConfig();
  const logger = createLogger(NAME, config.logLevel).child({ replica: config.id });
  const base = createMetrics('ingestion');
  const metrics = createIngestionMetrics(base);
  const flats = loadCredentials(config.credentialsFile);
  if (config.devicesCa !== undefined) logger.info({ devices: config.devicesUrl, ca: config.devicesCa }, 'device gateway over HTTPS: TLS verified with the CA file');
  else logger.info({ devices: config.devicesUrl }, 'device gateway over plain HTTP: the sidecar must originate TLS (Istio DestinationRule), else credentials cross the network in clear');

  const outbox = new Outbox(join(config.stateDir, 'outbox.sqlite'), { maxBytes: config.outboxMaxBytes });
  const pending = outbox.size();
  if (pending.fetches > 0) logger.info(pending, 'resuming with what the outbox holds');
  if (config.poll.timeoutMs >= config.poll.intervalMs) {
    logger.warn(config.poll, 'FLATLINE_POLL_TIMEOUT_MS is not shorter than FLATLINE_POLL_INTERVAL_MS: a slow flat misses polls and may hold up the others');
  }
  // The local fault plane: the same declarations Istio would apply, read from the fault file.
  const faults = new FaultSource(
    config.faultsFile,
    (err) => logger.error({ err: err.message }, 'fault file refused; keeping the previous faults'),
    (active) => logger.info({ faults: active.map((f) => f.name) }, 'faults in force'),
  );
  const faultCounter = createFaultCounter(base.registry);
  // The local plane's per-flat TCP faults: a flat listed there is polled through its own proxy.
  const links = new DeviceLinkSource(
    config.deviceLinksFile,
    (err) => logger.error({ err: err.message }, 'device-links file refused; keeping the previous links'),
    (flats) => logger.info({ flats: Object.keys(flats) }, 'per-flat device links in force'),
  );
  // On the Istio plane the device faults are Istio's own translation: the routes istiod generates for a sidecar of
  // this replica's identity (the device hop is HTTP/1.1, which no proxyless client carries), applied below.
  const istioRoutes =
    config.devicesXdsBootstrap === undefined
      ? undefined
      : IstioDeviceRoutes.fromBootstrapFile(config.devicesXdsBootstrap, devicesRouteName(), DEFAULT_MESH.devicesHost, {
          onRoutes: (routes, version) => logger.info({ version, faults: routes.filter((r) => r.fault.delay !== undefined || r.fault.abort !== undefined).map((r) => r.name) }, "device routes from istiod (ACKed)"),
          onRejected: (err, version) => logger.error({ version, err: err.message }, 'device routes from istiod refused (NACKed); keeping the previous ones'),
          onDisconnected: (err, delayMs) => logger.warn({ err: err.message, retryInMs: Math.round(delayMs) }, 'lost the stream of device routes from istiod; keeping the routes in force'),
        }).start();
  const deviceFaults = istioRoutes === undefined ? () => faults.active() : () => istioRoutes.active();
  const devices = new DeviceClient({
    baseUrl: config.devicesUrl,
    caFile: config.devicesCa,
    credentials: flats,
    connections: config.poll.concurrency,
    // The poll timeout bounds the handshake too: undici's own 10 s connect
    // timeout would cut a longer configured poll timeout short.
    timeoutMs: config.poll.timeoutMs,
    compose: (agent) => agent.compose(httpFaultInterceptor(new Injector('devices', deviceFaults, faultCounter))),
    linkOf: (flatId) => links.linkOf(flatId),
  });
  const poller = new Poller(config.poll, devices, outbox, metrics, logger.child({ component: 'poller' }));
  // xds:///storage…: a proxyless client of Istio's control plane, whose routes (and their faults) it follows;
  // the local injector then stays out of this hop (the fault file is for the hops the plane does not carry).
  const viaPlane = isXdsTarget(config.storageAddr);
  if (viaPlane) registerXds();
  const storage = new StorageServiceClient(config.storageAddr, credentials.createInsecure(), {
    // Retries are the forwarder's (with backoff, on an idempotent call): none here, so they do not multiply.
    'grpc.enable_retries': 0,
    'grpc.keepalive_time_ms': 10000,
    interceptors: viaPlane ? [] : [grpcFaultInterceptor(new Injector('storage', () => faults.active(), faultCounter))],
  });
  // Ask the plane for storage's routes now, not at the first Append: a replica that starts without work (its
  // flats still leased elsewhere) would otherwise meet istiod only when it has readings, perhaps while istiod is away.
  if (viaPlane) storage.getChannel().getConnectivityState(true);
  // Health says so before the outbox is full (then fetches are no longer kept).
  let outboxNearlyFull = false;
  const forwarder = new Forwarder(outbox, storage, { ...config.forward, warnRows: config.outboxWarnRows }, metrics, logger.child({ component: 'forwarder' }), (fraction) => {
    const nearlyFull = fraction >= OUTBOX_NOT_SERVING_FRACTION;
    if (nearlyFull === outboxNearlyFull) return;
    outboxNearlyFull = nearlyFull;
    if (nearlyFull) logger.error({ usedBytes: outbox.usedBytes(), limitBytes: outbox.limitBytes }, 'outbox 90 % full: NOT_SERVING until storage takes some');
    else logger.info('outbox below 90 % again: SERVING');
    host.setServing(!nearlyFull, nearlyFull ? 'outbox nearly full' : 'outbox open, polling');
  });

  const mongo = createMongoClient(config.mongoUri, config.dbTimeoutMs);
  const byBucket = new Map<number, string[]>();
  for (const id of flats.keys()) {
    const b = bucketOf(id, config.lease.buckets);
    byBucket.set(b, [...(byBucket.get(b) ?? []), id]);
  }
  let first = true;
  const fallback = fallbackShare(config.lease.buckets, config.ordinal, config.replicas);
  if (config.ordinal === undefined || config.ordinal >= config.replicas) {
    logger.warn({ id: config.id, replicas: config.replicas }, 'no ordinal below FLATLINE_INGESTION_REPLICAS at the end of FLATLINE_INGESTION_ID: while the lease database is away this replica polls every flat');
  }
  const leases = new LeaseManager(mongo.db(), config.id, { ...config.lease, dbTimeoutMs: config.dbTimeoutMs, fallback, replicas: config.replicas }, logger.child({ component: 'leases' }), (held) => {
    metrics.bucketsHeld.set(held.size);
    poller.setFlats([...held].flatMap((b) => byBucket.get(b) ?? []), !first);
    first = false;
  });

  const host = new GrpcHost({ logger, metrics: base, reflect: [] });
  const port = await host.listen(config.listen);
  const metricsServer = await serveMetrics(config.metricsListen, base.registry, logger);
  poller.start();
  forwarder.start();
  leases.start();
  host.setServing(!outboxNearlyFull, outboxNearlyFull ? 'outbox nearly full' : 'outbox open, polling');
  announceListening(logger, { grpc: withPort(config.listen, port), metrics: withPort(config.metricsListen, metricsServer.port), flats: flats.size });

  onShutdownSignal(logger, async () => {
    host.setServing(false, 'shutting down');
    await leases.stop();
    await poller.stop(config.shutdownGraceMs / 2);
    await forwarder.stop(config.shutdownGraceMs / 2);
    outbox.close();
    faults.close();
    istioRoutes?.close();
    links.close();
    await devices.close();
    storage.close();
    await mongo.close();
    await metricsServer.close();
    await host.shutdown(1000);
  });
});
