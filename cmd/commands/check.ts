import { loadConfigFile, summarizeState } from "../../core/config/index.ts";
import { MeshError, ErrorCodes } from "../../core/errors/index.ts";
import { parseFlags } from "../flags.ts";
import { helpFor } from "../help.ts";

export async function runCheck(args: string[]): Promise<number> {
  const { flags, positionals } = parseFlags("mesh check", args, {});
  if (flags.help) {
    process.stdout.write(helpFor("check"));
    return 0;
  }
  if (positionals.length !== 1) throw new MeshError(ErrorCodes.FLAG_INVALID, "'mesh check' takes exactly one FILE (see 'mesh check --help')");
  const loaded = await loadConfigFile(positionals[0]!);
  process.stdout.write(`${summarizeState(loaded)}\n`);
  return 0;
}
