// The authorization engine's own rule model: a superset of ztunnel's L4 `Authorization` (the
// config model) that also keeps the HTTP attributes a waypoint enforces, the AUDIT action, label
// selectors and target references. Plain, JSON-able data: the engine compiles it into matchers.

import type { StringMatch } from "../config/index.ts";

export type PolicyAction = "ALLOW" | "DENY" | "AUDIT";
export type PolicyScope = "Global" | "Namespace" | "WorkloadSelector";
/** Where a policy came from: Kubernetes YAML (root-namespace promotion applies) or ztunnel's shape. */
export type PolicyOrigin = "kubernetes" | "ztunnel";

/** `spec.targetRef(s)`: a policy attached to a waypoint (Gateway/GatewayClass) or a Service. */
export interface PolicyTargetRef {
  readonly group: string;
  readonly kind: string;
  readonly name: string;
  /** Always resolved: the policy's namespace when the document left it out. */
  readonly namespace: string;
}

/**
 * The attribute a condition reads. Istio's condition keys where they exist; `request.host`,
 * `request.method` and `request.path` stand for `to.operation` hosts, methods and paths.
 */
export type PolicyAttribute =
  | "source.ip"
  | "source.principal"
  | "source.namespace"
  | "source.serviceAccount"
  | "destination.ip"
  | "destination.port"
  | "connection.sni"
  | "remote.ip"
  | "request.host"
  | "request.method"
  | "request.path"
  | "request.auth.principal"
  | "request.auth.audiences"
  | "request.auth.presenter"
  | `request.headers[${string}]`
  | `request.auth.claims[${string}]`;

export type ConditionValue =
  | StringMatch
  | { readonly kind: "Cidr"; readonly cidr: string }
  | { readonly kind: "Port"; readonly port: number }
  | { readonly kind: "ServiceAccount"; readonly namespace: string; readonly serviceAccount: string }
  /** A path with `{*}` (one segment) or `{**}` (any rest) templates. */
  | { readonly kind: "PathTemplate"; readonly template: string };

/** values are OR'd; none of notValues may match; an empty list does not constrain. */
export interface PolicyCondition {
  readonly attribute: PolicyAttribute;
  readonly values: readonly ConditionValue[];
  readonly notValues: readonly ConditionValue[];
  /** Needs HTTP (a waypoint); ztunnel cannot evaluate it. */
  readonly l7: boolean;
  /** The field the document used, for messages (`methods`, `when[request.headers[x]]`, ...). */
  readonly field: string;
}

/** A match is the AND of its conditions; no conditions matches everything. */
export type PolicyMatchSpec = readonly PolicyCondition[];

/** A rule is the AND of its clauses; a clause is the OR of its matches (0 matches: true). */
export interface PolicyRule {
  readonly clauses: readonly (readonly PolicyMatchSpec[])[];
  /** Names of the HTTP-only fields the rule uses (empty for a pure L4 rule). */
  readonly l7Fields: readonly string[];
  /** Set when the rule can never match, with the reason. */
  readonly never?: string;
}

export interface CompiledPolicy {
  readonly name: string;
  readonly namespace: string;
  /** `namespace/name` */
  readonly key: string;
  readonly origin: PolicyOrigin;
  readonly scope: PolicyScope;
  readonly action: PolicyAction;
  /** Evaluated and reported like AUDIT, never enforced. */
  readonly dryRun: boolean;
  /** WorkloadSelector policies from Kubernetes; undefined for reference-only selection. */
  readonly matchLabels?: ReadonlyMap<string, string>;
  /** Non-empty: a waypoint policy, never applied at ztunnel. */
  readonly targetRefs: readonly PolicyTargetRef[];
  readonly rules: readonly PolicyRule[];
  /** Where it was read, for messages: `policies.yaml: document 2 (deny-foo)`. */
  readonly source: string;
  readonly warnings: readonly string[];
}

// ---- evaluation inputs and output --------------------------------------------------------

export interface L4Attributes {
  readonly sourceIp: string;
  /** Full SPIFFE id (`spiffe://td/ns/x/sa/y`); undefined when the peer has no mTLS identity. */
  readonly sourcePrincipal?: string | undefined;
  readonly destinationIp: string;
  /** The target (pod) port, after service port translation. */
  readonly destinationPort: number;
  readonly sni?: string | undefined;
}

/** What a JWT filter established about the request (absent: no request authentication). */
export interface RequestAuth {
  readonly principal?: string;
  readonly audiences?: readonly string[];
  readonly presenter?: string;
  readonly claims?: Readonly<Record<string, unknown>>;
}

export interface RequestAttributes extends L4Attributes {
  readonly method: string;
  /** Request target path; the query and fragment are ignored, dot segments are resolved. */
  readonly path: string;
  /** `:authority` / Host, port included or not. */
  readonly host: string;
  /** Web `Headers`, or a Map whose keys are lower-case header names. */
  readonly headers: { get(name: string): string | null | undefined };
  /** Client address from X-Forwarded-For / PROXY protocol; defaults to sourceIp. */
  readonly remoteIp?: string | undefined;
  readonly requestAuth?: RequestAuth | undefined;
}

export type PolicyLayer = "l4" | "l7";

export interface AuditRecord {
  /** `namespace/name` */
  readonly policy: string;
  readonly ruleIndex: number;
  /** AUDIT, or the action a dry-run policy would have taken. */
  readonly action: PolicyAction;
  readonly dryRun: boolean;
}

export interface Decision {
  readonly allowed: boolean;
  readonly reason: string;
  /** `namespace/name` of the policy that decided, when one did. */
  readonly policy?: string;
  readonly ruleIndex?: number;
  readonly audits: readonly AuditRecord[];
  readonly warnings: readonly string[];
}

/** A waypoint-side attachment point (`Gateway`, `GatewayClass`, `Service`, `ServiceEntry`). */
export interface PolicyTarget {
  readonly kind: string;
  readonly name: string;
  /** Ignored for cluster-scoped kinds (GatewayClass). */
  readonly namespace: string;
}

export interface ApplicablePolicies {
  readonly policies: readonly CompiledPolicy[];
  /** Keys the workload references that are not loaded: the workload is denied everything. */
  readonly missing: readonly string[];
}
