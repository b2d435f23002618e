// Flag parsing for every command: strict (unknown flags are errors), with one-line errors that
// name the flag and what was expected.
import { parseArgs } from "node:util";
import { MeshError, ErrorCodes } from "../core/errors/index.ts";

export interface FlagSpec {
  readonly [name: string]: { readonly type: "string" | "boolean"; readonly short?: string; readonly multiple?: boolean };
}

export type ParsedFlags<S extends FlagSpec> = {
  [K in keyof S]?: S[K]["multiple"] extends true ? string[] : S[K]["type"] extends "boolean" ? boolean : string;
} & { help?: boolean };

export function parseFlags<S extends FlagSpec>(command: string, args: readonly string[], spec: S): { flags: ParsedFlags<S>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: [...args],
      options: { ...spec, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: true,
    });
    return { flags: values as ParsedFlags<S>, positionals };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const unknown = /Unknown option '([^']+)'/.exec(msg);
    if (unknown) throw new MeshError(ErrorCodes.FLAG_INVALID, `unknown flag ${unknown[1]} for '${command}' (see '${command} --help')`);
    const missing = /Option '([^']+)' argument missing/.exec(msg);
    if (missing) throw new MeshError(ErrorCodes.FLAG_INVALID, `flag ${missing[1]!.split(",").pop()!.trim().split(" ")[0]} needs a value (see '${command} --help')`);
    throw new MeshError(ErrorCodes.FLAG_INVALID, `${msg.split("\n")[0]} (see '${command} --help')`);
  }
}

export function requireFlag(command: string, name: string, value: string | undefined): string {
  if (value === undefined || value === "") throw new MeshError(ErrorCodes.FLAG_INVALID, `'${command}' needs --${name} (see '${command} --help')`);
  return value;
}

export function portFlag(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^[0-9]{1,5}$/.test(value) || Number(value) > 65535) {
    throw new MeshError(ErrorCodes.FLAG_INVALID, `--${name} must be a port number 0-65535, got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

export function noPositionals(command: string, positionals: readonly string[]): void {
  if (positionals.length > 0) throw new MeshError(ErrorCodes.FLAG_INVALID, `unexpected argument ${JSON.stringify(positionals[0])} for '${command}' (see '${command} --help')`);
}
