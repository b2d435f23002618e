// core/policy: the authorization engine (Istio AuthorizationPolicy semantics). One engine for
// both roles: L4 attributes at ztunnel, request attributes at the waypoint.

export type {
  ApplicablePolicies,
  AuditRecord,
  CompiledPolicy,
  ConditionValue,
  Decision,
  L4Attributes,
  PolicyAction,
  PolicyAttribute,
  PolicyCondition,
  PolicyLayer,
  PolicyMatchSpec,
  PolicyOrigin,
  PolicyRule,
  PolicyScope,
  PolicyTarget,
  PolicyTargetRef,
  RequestAttributes,
  RequestAuth,
} from "./model.ts";
export { parseAuthorizationPolicies, type KubernetesParseOptions } from "./kubernetes.ts";
export { fromLocalConfig } from "./local.ts";
export { PolicyEngine, type PolicyEngineOptions } from "./engine.ts";
export { normalizeRequestPath } from "./compile.ts";
export { PolicySet, type PolicySetLog } from "./policy-set.ts";
