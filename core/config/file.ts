// Reading a local config file from disk: existence, a size bound, UTF-8, then parseLocalConfig.

import { readFileSync, statSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { ErrorCodes, MeshError } from "../errors/index.ts";
import { parseLocalConfig, type LoadedConfig } from "./load.ts";

/** Files larger than this are refused: a config is kilobytes, a huge file is a mistake. */
export const DEFAULT_MAX_CONFIG_BYTES = 32 * 1024 * 1024;

export function tooLarge(path: string, size: number, maxBytes: number): MeshError {
  return new MeshError(ErrorCodes.CONFIG_INVALID, `${path}: file is ${size} bytes, larger than the ${maxBytes} byte limit`);
}

function readError(path: string, e: unknown): MeshError {
  if ((e as NodeJS.ErrnoException).code === "ENOENT") {
    return new MeshError(ErrorCodes.CONFIG_FILE_MISSING, `config file not found: ${path}`, { cause: e });
  }
  if (e instanceof MeshError) return e;
  return new MeshError(ErrorCodes.CONFIG_INVALID, `cannot read config file ${path}: ${(e as Error).message}`, { cause: e });
}

/** Decodes file bytes as UTF-8; CONFIG_PARSE naming the file otherwise. */
export function decodeConfigText(data: Uint8Array, path: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(data);
  } catch (e) {
    throw new MeshError(ErrorCodes.CONFIG_PARSE, `${path}: not valid UTF-8`, { cause: e });
  }
}

/** Decodes and parses file bytes; errors name the file as given. */
export function parseConfigBytes(data: Uint8Array, path: string): LoadedConfig {
  return parseLocalConfig(decodeConfigText(data, path), path);
}

/** Reads the file's bytes, enforcing the size bound; CONFIG_FILE_MISSING when absent. */
export function readConfigBytesSync(path: string, maxBytes = DEFAULT_MAX_CONFIG_BYTES): Uint8Array {
  try {
    const st = statSync(path);
    if (st.size > maxBytes) throw tooLarge(path, st.size, maxBytes);
    return readFileSync(path);
  } catch (e) {
    throw readError(path, e);
  }
}

export async function readConfigBytes(path: string, maxBytes = DEFAULT_MAX_CONFIG_BYTES): Promise<Uint8Array> {
  try {
    const st = await stat(path);
    if (st.size > maxBytes) throw tooLarge(path, st.size, maxBytes);
    return await readFile(path);
  } catch (e) {
    throw readError(path, e);
  }
}

/**
 * Loads and validates a local config file (what `mesh check FILE` runs). Throws
 * CONFIG_FILE_MISSING, CONFIG_PARSE or CONFIG_INVALID.
 */
export async function loadConfigFile(path: string, maxBytes = DEFAULT_MAX_CONFIG_BYTES): Promise<LoadedConfig> {
  return parseConfigBytes(await readConfigBytes(path, maxBytes), path);
}
