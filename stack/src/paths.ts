/** Where things are: the repository, its tools and the default state folder. */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Binaries the project built for itself (tools/install.sh). */
export const TOOLS_BIN = join(REPO_ROOT, '.tools', 'bin');
/** The default state folder of the local stack (ignored by git). */
export const DEFAULT_STATE_DIR = join(REPO_ROOT, '.state');

/** Entry point of a service's main. */
export function serviceEntry(service: string): string {
  return join(REPO_ROOT, 'services', service, 'src', 'main.ts');
}
