import { MeshError, ErrorCodes } from "../../core/errors/index.ts";
import { initLocalCa } from "../../core/identity/index.ts";
import { noPositionals, parseFlags, requireFlag } from "../flags.ts";
import { helpFor } from "../help.ts";

export async function runCa(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "-h") {
    process.stdout.write(helpFor("ca"));
    return sub === undefined ? 2 : 0;
  }
  if (sub !== "init") throw new MeshError(ErrorCodes.FLAG_INVALID, `unknown 'mesh ca' subcommand ${JSON.stringify(sub)} (expected 'init')`);
  const { flags, positionals } = parseFlags("mesh ca init", rest, { dir: { type: "string" }, "trust-domain": { type: "string" } });
  if (flags.help) {
    process.stdout.write(helpFor("ca"));
    return 0;
  }
  noPositionals("mesh ca init", positionals);
  const dir = requireFlag("mesh ca init", "dir", flags.dir);
  const trustDomain = flags["trust-domain"] ?? "cluster.local";
  await initLocalCa(dir, { trustDomain });
  process.stdout.write(`created a local CA for trust domain ${trustDomain} in ${dir}\n`);
  return 0;
}
