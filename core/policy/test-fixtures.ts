// Shared by the policy tests only: workloads and connection attributes with sensible defaults.

import type { L4Attributes, RequestAttributes } from "./model.ts";

// The workload builder is shared with the benches (bench/policy.ts).
export { workloadFixture as workload } from "../../test/harness/workload.ts";

export function spiffe(ns: string, sa: string, td = "cluster.local"): string {
  return `spiffe://${td}/ns/${ns}/sa/${sa}`;
}

export function conn(over: Partial<L4Attributes> = {}): L4Attributes {
  return {
    sourceIp: "10.0.0.5",
    sourcePrincipal: spiffe("default", "client"),
    destinationIp: "10.0.1.7",
    destinationPort: 8080,
    ...over,
  };
}

export function request(over: Partial<RequestAttributes> & { headerMap?: Record<string, string> } = {}): RequestAttributes {
  const { headerMap, ...rest } = over;
  return {
    ...conn(rest),
    method: "GET",
    path: "/",
    host: "echo.default.svc.cluster.local",
    headers: new Headers(headerMap ?? {}),
    ...rest,
  };
}

/** Removes the common indentation of a template literal's lines. */
export function dedent(text: string): string {
  const lines = text.replace(/^\n+|\s+$/g, "").split("\n");
  const indent = Math.min(...lines.filter((l) => l.trim() !== "").map((l) => l.length - l.trimStart().length));
  return lines.map((l) => l.slice(indent)).join("\n");
}

/** One Kubernetes AuthorizationPolicy document; `spec` is YAML at any indentation. */
export function k8sDoc(name: string, namespace: string, spec: string): string {
  const indented = dedent(spec)
    .split("\n")
    .map((l) => `  ${l}`)
    .join("\n");
  return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: ${name}
  namespace: ${namespace}
spec:
${indented}
`;
}
