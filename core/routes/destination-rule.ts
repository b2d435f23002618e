// Istio DestinationRule (networking.istio.io), the part a waypoint needs for egress: TLS
// origination to a service outside the mesh (`trafficPolicy.tls.mode: SIMPLE`, with `sni` and
// `caCertificates`). Mesh traffic is HBONE already, so ISTIO_MUTUAL and DISABLE mean "no extra
// TLS". Fields this waypoint does not apply are reported, not silently ignored.
import { readFileSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { KUBERNETES_METADATA_KEYS, KUBERNETES_TOP_KEYS, checkKeys, isObj, readKubernetesDocuments, readMap, readString, type DocProblems } from "../config/index.ts";
import { ErrorCodes, MeshError } from "../errors/index.ts";
import { NAMESPACE_RULE, NAME_RULE, hostnameRule } from "./read.ts";

export interface DestinationRule {
  readonly name: string;
  readonly namespace: string;
  /** `namespace/name` */
  readonly key: string;
  /** the service hostname it applies to */
  readonly host: string;
  /** TLS origination; absent = plain TCP out of the waypoint */
  readonly tls?: { readonly sni?: string; readonly caPem?: string };
  readonly source: string;
}

const API_VERSIONS = ["networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"];
const SPEC_KEYS = ["host", "trafficPolicy", "subsets", "exportTo", "workloadSelector"];
const POLICY_KEYS = ["tls", "loadBalancer", "connectionPool", "outlierDetection", "portLevelSettings", "tunnel", "proxyProtocol"];
const TLS_KEYS = ["mode", "sni", "caCertificates", "insecureSkipVerify", "subjectAltNames", "credentialName", "clientCertificate", "privateKey", "caCrl"];
const MAX_CA_BYTES = 1024 * 1024;

function readDocument(doc: unknown, p: DocProblems, fileName: string): DestinationRule | undefined {
  const root = readMap(doc, "", p);
  if (!root) return undefined;
  if (root["kind"] !== "DestinationRule") return undefined;
  const before = p.count();
  checkKeys(root, "", KUBERNETES_TOP_KEYS, p);
  if (typeof root["apiVersion"] !== "string" || !API_VERSIONS.includes(root["apiVersion"])) p.error("apiVersion", `expected one of ${API_VERSIONS.join(", ")}`);
  const meta = readMap(root["metadata"] ?? {}, "metadata", p) ?? {};
  checkKeys(meta, "metadata", KUBERNETES_METADATA_KEYS, p);
  const name = readString(meta, "name", "metadata", p, NAME_RULE);
  if (name) p.name(name);
  const namespace = readString(meta, "namespace", "metadata", p, NAMESPACE_RULE) ?? "default";
  const spec = readMap(root["spec"], "spec", p);
  if (!spec) return undefined;
  checkKeys(spec, "spec", SPEC_KEYS, p);
  const host = readString(spec, "host", "spec", p, { ...hostnameRule(false), required: true });
  for (const k of ["subsets", "workloadSelector"]) if (spec[k] != null) p.warn(`spec.${k}`, "not applied by the waypoint");
  let tls: DestinationRule["tls"];
  const policy = spec["trafficPolicy"] == null ? undefined : readMap(spec["trafficPolicy"], "spec.trafficPolicy", p);
  if (policy) {
    checkKeys(policy, "spec.trafficPolicy", POLICY_KEYS, p);
    for (const k of POLICY_KEYS) if (k !== "tls" && policy[k] != null) p.warn(`spec.trafficPolicy.${k}`, "not applied by the waypoint (least request and passive ejection are built in)");
    const t = policy["tls"] == null ? undefined : readMap(policy["tls"], "spec.trafficPolicy.tls", p);
    if (t) {
      checkKeys(t, "spec.trafficPolicy.tls", TLS_KEYS, p);
      const mode = readString(t, "mode", "spec.trafficPolicy.tls", p) ?? "DISABLE";
      if (t["insecureSkipVerify"] === true) p.error("spec.trafficPolicy.tls.insecureSkipVerify", "not supported: the waypoint always verifies the server it originates TLS to");
      for (const k of ["credentialName", "clientCertificate", "privateKey", "caCrl", "subjectAltNames"]) {
        if (t[k] != null) p.error(`spec.trafficPolicy.tls.${k}`, "not supported (only mode SIMPLE with sni and caCertificates)");
      }
      if (mode === "SIMPLE") {
        const sni = readString(t, "sni", "spec.trafficPolicy.tls", p, hostnameRule(false));
        const caPath = readString(t, "caCertificates", "spec.trafficPolicy.tls", p, { min: 1, max: 4096 });
        let caPem: string | undefined;
        if (caPath !== undefined) {
          const full = resolve(dirname(fileName), caPath);
          try {
            if (statSync(full).size > MAX_CA_BYTES) throw new Error(`larger than ${MAX_CA_BYTES} bytes`);
            caPem = readFileSync(full, "utf8");
            if (!caPem.includes("-----BEGIN CERTIFICATE-----")) throw new Error("no PEM certificate in it");
          } catch (e) {
            p.error("spec.trafficPolicy.tls.caCertificates", `cannot use ${full}: ${(e as Error).message}`);
          }
        }
        tls = Object.freeze({ ...(sni ? { sni } : {}), ...(caPem ? { caPem } : {}) });
      } else if (mode !== "DISABLE" && mode !== "ISTIO_MUTUAL") {
        p.error("spec.trafficPolicy.tls.mode", `expected DISABLE, SIMPLE or ISTIO_MUTUAL (MUTUAL is not supported), got ${JSON.stringify(mode)}`);
      }
    }
  }
  if (p.count() > before || !name || !host) return undefined;
  return Object.freeze({ name, namespace, key: `${namespace}/${name}`, host, ...(tls ? { tls } : {}), source: p.source });
}

/** DestinationRules in a YAML stream (other kinds skipped). Throws one MeshError listing every problem. */
export function parseDestinationRules(text: string, fileName: string): DestinationRule[] {
  if (text.length > 4 * 1024 * 1024) throw new MeshError(ErrorCodes.CONFIG_INVALID, `${fileName}: file is larger than 4 MiB`);
  return readKubernetesDocuments(text, fileName, { kind: "DestinationRule", maxDocuments: 1024 }, (v, p) => (isObj(v) ? readDocument(v, p, fileName) : undefined));
}
