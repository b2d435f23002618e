import { createLocalCa } from "./index.ts";
import { pemCertificates, x509 } from "./x509.ts";
import { parseCert, signedBy } from "./certs.ts";
const ca = await createLocalCa({ trustDomain: "example.org" });
const s = await ca.issueWorkloadSvid({ identity: "spiffe://example.org/ns/default/sa/a", lifetimeMs: 3600_000 });
const [leafDer, intDer] = pemCertificates(s.chainPem) as [Uint8Array, Uint8Array];
const N = 200;
let t = performance.now();
for (let i=0;i<N;i++) new x509.X509Certificate(leafDer);
console.log("x509 parse us", ((performance.now()-t)/N*1000).toFixed(0));
t = performance.now();
for (let i=0;i<N;i++) { const c = new x509.X509Certificate(leafDer); c.extensions; c.notBefore; }
console.log("x509 parse+ext us", ((performance.now()-t)/N*1000).toFixed(0));
t = performance.now();
for (let i=0;i<N;i++) parseCert(leafDer);
console.log("parseCert us", ((performance.now()-t)/N*1000).toFixed(0));
const leaf = parseCert(leafDer); const inter = parseCert(intDer);
t = performance.now();
for (let i=0;i<N;i++) { inter.keys.clear(); await signedBy(leaf, inter); }
console.log("signedBy w/ import us", ((performance.now()-t)/N*1000).toFixed(0));
t = performance.now();
for (let i=0;i<N;i++) { await signedBy(leaf, inter); }
console.log("signedBy cached key us", ((performance.now()-t)/N*1000).toFixed(0));
const k = await inter.cert.publicKey.export({name:"ECDSA", namedCurve:"P-256"} as any, ["verify"]);
t = performance.now();
for (let i=0;i<N;i++) { await leaf.cert.verify({publicKey: k, signatureOnly: true}); }
console.log("x509 verify us", ((performance.now()-t)/N*1000).toFixed(0));
const nk = new (await import("node:crypto")).X509Certificate(leafDer);
const ik = new (await import("node:crypto")).X509Certificate(intDer);
t = performance.now();
for (let i=0;i<N;i++) { nk.verify(ik.publicKey); }
console.log("node verify us", ((performance.now()-t)/N*1000).toFixed(0));
