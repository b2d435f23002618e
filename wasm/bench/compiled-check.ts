// Checks that a `bun build --compile` binary can run a plugin in its worker. Built and run by
// compile.test.ts; also handy by hand:
//   ./node_modules/.bin/bun build --compile --root . wasm/bench/compiled-check.ts wasm/vm-worker.ts --outfile /tmp/check
//   /tmp/check <module bytes as hex>

import { WasmPlugin } from "../index.ts";

// the module arrives as hex on the command line (compile.test.ts builds it with wabt)
const WAT_HEX = process.argv[2] ?? "";
const bytes = new Uint8Array(Buffer.from(WAT_HEX, "hex"));

const plugin = new WasmPlugin({ name: "compiled", rootId: "r", bytes, configuration: "{}", isolation: "worker" });
try {
  await plugin.start();
  const s = plugin.stream();
  const r = await s.requestHeaders([[":path", "/"]], true);
  console.log(JSON.stringify(r));
  s.done();
  await plugin.stop();
} catch (e) {
  console.log(`FAILED ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}
