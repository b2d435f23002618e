import { loadConfigFile, summarizeState } from "../../core/config/index.ts";
import { MeshError, ErrorCodes, formatForCli } from "../../core/errors/index.ts";
import { parseFlags } from "../flags.ts";
import { helpFor } from "../help.ts";

/** Exit 0 with a summary, or 1 with every error (a missing or unreadable file is an error too). */
export async function runCheck(args: string[]): Promise<number> {
  const { flags, positionals } = parseFlags("mesh check", args, {});
  if (flags.help) {
    process.stdout.write(helpFor("check"));
    return 0;
  }
  if (positionals.length !== 1) throw new MeshError(ErrorCodes.FLAG_INVALID, "'mesh check' takes exactly one FILE (see 'mesh check --help')");
  try {
    const loaded = await loadConfigFile(positionals[0]!);
    // The plugins section belongs to plugins/: validated the way the waypoint will read it.
    const { parsePluginSection } = await import("../../plugins/index.ts");
    const plugins = parsePluginSection(loaded.plugins, loaded.fileName);
    process.stdout.write(`${summarizeState(loaded)}\n`);
    if (plugins.length > 0) process.stdout.write(`plugins: ${plugins.map((p) => `${p.key} (${p.phase}, ${p.failStrategy})`).join(", ")}\n`);
    for (const w of loaded.warnings) process.stdout.write(`warning: ${w}\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`${formatForCli(e)}\n`);
    return 1;
  }
}
