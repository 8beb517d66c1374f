import httpSecurityHeaders from "@middy/http-security-headers";

/**
 * The security headers of a JSON API (OWASP REST Security Cheat Sheet), not of a web page: middy's defaults
 * (helmet's) add ≈ 1.1 KB per response for documents (a 43-feature Permissions-Policy, COEP/COOP,
 * Origin-Agent-Cluster, a reporting CSP), three quarters of a POST's response. A response here is never a
 * document to render: `nosniff` with a JSON media type, a CSP that allows nothing and may not be framed,
 * no referrer, HTTPS only, not readable by other origins' no-cors loads. `Cache-Control: no-store` is set
 * with the response (http-handler.ts), as a handler may choose otherwise (the OpenAPI document).
 */
export const apiSecurityHeaders = () =>
  httpSecurityHeaders({
    // Merged into middy's defaults: an empty string drops a directive (but keeps the valueless `sandbox` and
    // `upgrade-insecure-requests`, which cost nothing here and sandbox a browser's JSON viewer).
    contentSecurityPolicy: {
      "default-src": "'none'",
      "frame-ancestors": "'none'",
      "base-uri": "",
      "form-action": "",
      "report-to": "",
      "require-trusted-types-for": "",
    },
    strictTransportSecurity: { maxAge: 180 * 24 * 60 * 60, includeSubDomains: true, preload: false },
    permissionsPolicy: false,
    crossOriginEmbedderPolicy: false,
    crossOriginOpenerPolicy: false,
    originAgentCluster: false,
    dnsPrefetchControl: false,
    downloadOptions: false,
    permittedCrossDomainPolicies: false,
    reportTo: false,
  });
