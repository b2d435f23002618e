// Workload identity: SPIFFE ids, the local CA, X.509-SVID issuance and verification, and the
// certificate manager. The public entry of core/identity; other folders import only this file.
export { parseSpiffeId, istioIdentity, principalOf, MAX_SPIFFE_ID_BYTES, MAX_TRUST_DOMAIN_BYTES, type SpiffeId } from "./spiffe.ts";
export { TrustBundle, DEFAULT_VERIFY_CACHE_ENTRIES } from "./bundle.ts";
export {
  verifySvidChain,
  SVID_CLOCK_SKEW_MS,
  MAX_PEER_CHAIN_CERTS,
  type SvidUsage,
  type VerifySvidOptions,
  type VerifiedPeer,
} from "./verify.ts";
export { peerChainFromTlsSocket } from "./tls-peer.ts";
export {
  LocalCa,
  initLocalCa,
  loadLocalCa,
  createLocalCa,
  CA_FILES,
  DEFAULT_TRUST_DOMAIN,
  type CaLayout,
  type CertificateAuthority,
  type IssueSvidRequest,
  type Svid,
} from "./ca.ts";
export {
  CertificateManager,
  refreshAt,
  backoffDelay,
  BACKOFF_INITIAL_MS,
  BACKOFF_MAX_MS,
  type CertificateManagerOptions,
  type CertificateSnapshot,
  type IdentityLog,
  type IdentityLogLevel,
  type RotateListener,
} from "./manager.ts";
export { meshPeerVerifier, svidTlsMaterial, type MeshPeerVerifier } from "./peer.ts";
