/** The shared service kit, @flatline/platform's one entry point. */
export * from './config.ts';
export * from './credentials.ts';
export * from './deadline.ts';
export * from './grpc-client.ts';
export * from './grpc-host.ts';
export * from './help.ts';
export * from './ids.ts';
export * from './lifecycle.ts';
export * from './logger.ts';
export * from './metrics.ts';
export * from './mongo.ts';
export * from './net.ts';
export * from './status.ts';
export * from './store-schema.ts';
export * from './stable-hash.ts';
export * from './database-health.ts';
export * from './serve.ts';
