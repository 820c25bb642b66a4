/**
 * The local plane's per-flat device links: which flats ingestion reaches
 * through a proxy of their own (a Toxiproxy proxy carrying that flat's TCP
 * fault) instead of the device gateway's address. One JSON file in the state
 * folder, written atomically like the fault file and followed by ingestion;
 * a flat not in it is polled at the gateway's address. A file that is not
 * one keeps the previous links and is reported.
 */
import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { FollowedFile, writeJsonAtomically } from './followed-file.ts';

const FILE_SCHEMA = z.object({
  version: z.literal(1),
  /** flat id → host:port of its own proxy. */
  flats: z.record(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/), z.string().regex(/^[^\s:/]+:\d{1,5}$/, 'must be host:port')),
});

/** Reads the device-links file: flat id → host:port; a missing file means none. Throws naming what is wrong. */
export function readDeviceLinks(file: string): Record<string, string> {
  if (!existsSync(file)) return {};
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw new Error(`device-links file ${file} is not JSON`);
  }
  const parsed = FILE_SCHEMA.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`device-links file ${file}: ${issue?.path.join('.') || '(top)'}: ${issue?.message ?? 'invalid'} (expected {"version":1,"flats":{"<flat>":"host:port"}})`);
  }
  return parsed.data.flats;
}

/** Writes the device links atomically (readers see the old or the new file, never half of one). */
export function writeDeviceLinks(file: string, flats: Readonly<Record<string, string>>): void {
  writeJsonAtomically(file, { version: 1, flats });
}

/** The device links in force for one process, following the file (polled every pollMs). */
export class DeviceLinkSource {
  private readonly followed: FollowedFile<Record<string, string>>;

  constructor(file: string, onError: (err: Error) => void, onChange: (links: Readonly<Record<string, string>>) => void = () => {}, pollMs = 200) {
    this.followed = new FollowedFile(file, readDeviceLinks, {}, onError, onChange, pollMs);
  }

  /** host:port of flatId's own link, or undefined: the gateway's address. */
  linkOf(flatId: string): string | undefined {
    const links = this.followed.current();
    return Object.hasOwn(links, flatId) ? links[flatId] : undefined;
  }

  /** Stops following the file. */
  close(): void {
    this.followed.close();
  }
}
