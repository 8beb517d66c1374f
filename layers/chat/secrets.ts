// Secrets Manager reads are cached this long, so a rotated secret reaches new readers within it (and a read costs
// a round trip and money).
const SECRET_MAX_AGE_SECONDS = 300;

/**
 * A JSON secret from Secrets Manager (cached; `fresh` skips the cache, e.g. after the password was refused). Only
 * AWS processes read one: local runs never load the SDK.
 */
export async function readJsonSecret<T>(arn: string, fresh = false): Promise<T | undefined> {
  const { getSecret } = await import("@aws-lambda-powertools/parameters/secrets");
  return (await getSecret<T>(arn, {
    transform: "json",
    maxAge: SECRET_MAX_AGE_SECONDS,
    forceFetch: fresh,
  })) as T | undefined;
}
