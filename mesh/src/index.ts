/** The fault catalogue, its Istio rendering and the local injectors: @flatline/mesh's one entry point. */
export * from './fault-file.ts';
export * from './fault.ts';
export * from './grpc-injector.ts';
export * from './http-injector.ts';
export * from './injector.ts';
export * from './istio.ts';
export * from './scenarios.ts';
export * from './tcp-fault.ts';
export * from './device-links.ts';
