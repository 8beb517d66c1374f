// Secrets Manager reads are cached this long, so a rotated secret reaches new readers within it (and a read costs
// a round trip and money).
const SECRET_MAX_AGE_SECONDS = 300;

/** A JSON secret from Secrets Manager (cached). Only AWS processes read one: local runs never load the SDK. */
export async function readJsonSecret<T>(arn: string): Promise<T | undefined> {
  const { getSecret } = await import("@aws-lambda-powertools/parameters/secrets");
  return (await getSecret<T>(arn, { transform: "json", maxAge: SECRET_MAX_AGE_SECONDS })) as T | undefined;
}
