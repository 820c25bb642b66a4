/** Local nodes: what they can go through and where they stand (shared by the stack and its control socket). */

/** What a node can go through, as a VM would. */
export type NodeAction = 'drain' | 'crash' | 'freeze' | 'restore';
/** Where a node stands. */
export type NodeState = 'ready' | 'drained' | 'crashed' | 'frozen';
