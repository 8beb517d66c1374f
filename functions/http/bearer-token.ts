/**
 * The token of `Authorization: Bearer <token>`, the scheme in any letter case (RFC 9110 §11.1): one reading for
 * authentication (request-parsing) and the per-token rate limit, so a request is limited as the token it uses.
 */
export function bearerToken(header: string | undefined): string | undefined {
  return header?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
}
