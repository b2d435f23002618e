import { initLocalCa, loadLocalCa, CA_FILES } from "./index.ts";
import { writeFile, rm, mkdtemp, readFile } from "node:fs/promises";
import { join } from "node:path";
import { tmpdir } from "node:os";
const base = await mkdtemp(join(tmpdir(), "x-"));
const cases: [string, string|null][] = [
  [CA_FILES.root, "-----BEGIN CERTIFICATE-----\nMIIB!!!notbase64\n-----END CERTIFICATE-----\n"],
  [CA_FILES.cert, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
  [CA_FILES.key, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"],
  [CA_FILES.chain, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
  [CA_FILES.root, ""], [CA_FILES.key, null],
];
let i = 0;
for (const [f, text] of cases) {
  const dir = join(base, String(i++)); await initLocalCa(dir);
  if (text === null) await rm(join(dir, f)); else await writeFile(join(dir, f), text);
  try { await loadLocalCa(dir); } catch (e: any) { console.log(e.code, e.message.replace(base, "<tmp>")); }
}
const a = join(base, "a"), b = join(base, "b"); await initLocalCa(a); await initLocalCa(b);
await writeFile(join(a, CA_FILES.root), await readFile(join(b, CA_FILES.root)));
try { await loadLocalCa(a); } catch (e: any) { console.log(e.code, e.message.replaceAll(base, "<tmp>")); }
try { await initLocalCa(a); } catch (e: any) { console.log(e.code, e.message.replaceAll(base, "<tmp>")); }
await rm(base, { recursive: true });
