#!/usr/bin/env bun
// The `mesh` executable: one binary, role chosen by flag. Thin: parse, dispatch, report errors
// as one line and a non-zero exit, never a stack trace.
// First, so the Reflect polyfill runs before any bundled module (tsyringe under @peculiar/x509) needs it.
import "reflect-metadata";
import { formatForCli, asMeshError, ErrorCodes, MeshError } from "../core/errors/index.ts";
import { HELP, helpFor } from "./help.ts";

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === "--help" || first === "-h" || first === "help") {
    if (first === "help" && rest[0]) {
      process.stdout.write(helpFor(rest[0]));
      return 0;
    }
    process.stdout.write(HELP);
    return 0;
  }
  if (first === "--version" || first === "version") {
    const { runVersion } = await import("./commands/version.ts");
    return runVersion(rest);
  }
  if (first.startsWith("--role")) {
    const { runRole } = await import("./commands/role.ts");
    return runRole(argv);
  }
  switch (first) {
    case "ca": {
      const { runCa } = await import("./commands/ca.ts");
      return runCa(rest);
    }
    case "check": {
      const { runCheck } = await import("./commands/check.ts");
      return runCheck(rest);
    }
    case "plugin": {
      const { runPluginCommand } = await import("./commands/plugin.ts");
      return runPluginCommand(rest);
    }
    case "pod": {
      const { runPod } = await import("./commands/pod.ts");
      return runPod(rest);
    }
    case "quickstart": {
      const { runQuickstart } = await import("./commands/quickstart.ts");
      return runQuickstart(rest);
    }
    default:
      throw new MeshError(ErrorCodes.FLAG_INVALID, `unknown command or flag ${JSON.stringify(first)} (see 'mesh --help')`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== -1) process.exit(code);
  },
  (e) => {
    const err = asMeshError(e);
    process.stderr.write(`${formatForCli(err)}\n`);
    process.exit(err.code === ErrorCodes.CONFIG_INVALID || err.code === ErrorCodes.CONFIG_PARSE ? 1 : 2);
  },
);
