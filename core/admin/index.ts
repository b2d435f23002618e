// Public entry of core/admin: the admin (15000), readiness (15021) and metrics (15020) endpoints.
export {
  createAdminApp,
  createMetricsApp,
  createReadinessApp,
  type AdminAppDeps,
  type LoggingControl,
  type MetricsAppDeps,
  type ReadinessAppDeps,
} from "./apps.ts";
export { isKeyMaterialName, scrubKeyMaterial } from "./scrub.ts";
export { isLoopbackHost, startAdminServers, type AdminServers, type AdminServersOptions, type ListenAddress } from "./servers.ts";
