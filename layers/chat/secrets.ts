// Secrets Manager reads are cached this long, so a rotated secret reaches new readers within it (and a read costs
// a round trip and money).
const SECRET_MAX_AGE_SECONDS = 300;

/**
 * A JSON secret from Secrets Manager (cached; `fresh` skips the cache, e.g. after the password was refused). Only
 * AWS processes read one: local runs never load the SDK.
 */
export async function readJsonSecret<T>(arn: string, fresh = false): Promise<T | undefined> {
  const { getSecret } = await import("@aws-lambda-powertools/parameters/secrets");
  try {
    return (await getSecret<T>(arn, {
      transform: "json",
      maxAge: SECRET_MAX_AGE_SECONDS,
      forceFetch: fresh,
    })) as T | undefined;
  } catch (err) {
    // Powertools' message quotes JSON.parse's, which quotes the text (a password stored as plain text, whole when
    // short): the relay's log, Lambda's error line and a failed deploy's CloudFormation event would carry it.
    if (err instanceof Error && err.name === "TransformParameterError")
      throw new Error(`the secret ${arn} is not JSON`);
    throw err;
  }
}
