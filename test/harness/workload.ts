// A complete Workload value (as core/config builds one) for unit tests and benches that call code
// taking a Workload, such as the policy engine, without loading a config file.
import type { Workload } from "../../core/config/index.ts";

let nameCounter = 0;

export interface WorkloadFixtureOptions {
  /** default: a fresh `w<N>` */
  name?: string;
  namespace?: string;
  /** default: the name; also the canonical name and workload name */
  serviceAccount?: string;
  labels?: Record<string, string>;
  authorizationPolicies?: string[];
  uid?: string;
}

/** An HBONE pod workload on node-a (10.0.1.7), trust domain cluster.local; frozen. */
export function workloadFixture(over: WorkloadFixtureOptions = {}): Workload {
  const namespace = over.namespace ?? "default";
  const name = over.name ?? `w${++nameCounter}`;
  const serviceAccount = over.serviceAccount ?? name;
  return Object.freeze({
    uid: over.uid ?? `cluster1//v1/Pod/${namespace}/${name}`,
    name,
    namespace,
    serviceAccount,
    trustDomain: "cluster.local",
    workloadIps: ["10.0.1.7"],
    hostname: "",
    protocol: "HBONE",
    node: "node-a",
    network: "",
    clusterId: "Kubernetes",
    canonicalName: serviceAccount,
    canonicalRevision: "v1",
    workloadName: serviceAccount,
    workloadType: "deployment",
    locality: { region: "", zone: "", subzone: "" },
    status: "Healthy",
    capacity: 1,
    authorizationPolicies: over.authorizationPolicies ?? [],
    services: new Map(),
    labels: new Map(Object.entries(over.labels ?? {})),
    identity: `spiffe://cluster.local/ns/${namespace}/sa/${serviceAccount}`,
  } satisfies Workload);
}
