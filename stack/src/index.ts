/** The local supervisor (nodes, HAProxy, restarts, probes) and the test harness that starts stacks: @flatline/stack's one entry point. */
export * from './checks.ts';
export * from './components.ts';
export * from './control.ts';
export * from './crash-loop.ts';
export * from './events.ts';
export * from './haproxy.ts';
export * from './harness.ts';
export * from './leftovers.ts';
export * from './nodes.ts';
export * from './paths.ts';
export * from './probes.ts';
export * from './proc-stats.ts';
export * from './processes.ts';
export * from './stack-file.ts';
export * from './stack.ts';
