/** Types of ensure-tools.mjs (plain JavaScript: bootstrap.mjs runs it before npm ci). */

/** A tool's installer name: tools/install-<name>.sh. */
export type ToolName = string;

/** The tools each command runs, by installer name. */
export declare const TOOLS_FOR: {
  readonly up: readonly ToolName[];
  readonly chaos: readonly ToolName[];
  readonly bench: readonly ToolName[];
  readonly manifests: readonly ToolName[];
  readonly tiltfile: readonly ToolName[];
};

/** Raised when tools cannot be installed; the message says which and why. */
export declare class ToolsError extends Error {}

/** Every tool there is an installer for, sorted. */
export declare function availableTools(): ToolName[];

/** The tools tools/install.sh installs when named none (npm test). */
export declare function defaultTools(): ToolName[];

/** Throws a ToolsError naming the first unknown tool and the tools there are. */
export declare function checkToolNames(names: readonly ToolName[]): void;

/** What installing these tools would build, with the rough time of each in seconds; builds nothing. */
export declare function toolsPlan(names: readonly ToolName[]): Array<{ tool: ToolName; seconds: number }>;

/** Makes sure the tools are in .tools/bin, building what is not cached; throws a ToolsError on failure. */
export declare function ensureTools(names: readonly ToolName[], options?: { quiet?: boolean; planned?: boolean }): void;

/** A rough duration for a person: "~40 s", "~3 min". */
export declare function roughDuration(seconds: number): string;
