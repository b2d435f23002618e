import { VERSION } from "../../core/ztunnel/index.ts";
import { noPositionals, parseFlags } from "../flags.ts";
import { helpFor } from "../help.ts";

export function runVersion(args: string[]): number {
  const { flags, positionals } = parseFlags("mesh version", args, {});
  if (flags.help) {
    process.stdout.write(helpFor("version"));
    return 0;
  }
  noPositionals("mesh version", positionals);
  process.stdout.write(`mesh ${VERSION} (bun ${Bun.version})\n`);
  return 0;
}
