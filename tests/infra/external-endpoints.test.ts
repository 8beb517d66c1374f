import { describe, expect, it } from "vitest";
import { functions } from "#functions/manifest.ts";
import { EXTERNAL_CONTEXT, functionLogicalId, resourcesOf, type Synth, synth } from "./synth.ts";

type Statement = { Action: string | string[]; Resource: unknown };
type FunctionProps = {
  Environment?: { Variables?: Record<string, unknown> };
  Role?: { "Fn::GetAtt": string[] };
};

const REDIS_SECRET = "arn:aws:secretsmanager:us-east-1:000000000000:secret:chat-redis-AbCdEf";
const TLS_KEYS = ["DATABASE_SSL", "REDIS_TLS", "KAFKA_SSL"] as const;

const allFunctions = (s: Synth) =>
  Object.values(resourcesOf(s.template, "AWS::Lambda::Function")).map(
    (r) => (r.Properties ?? {}) as FunctionProps,
  );
const propsOf = (s: Synth, name: string) =>
  (resourcesOf(s.template, "AWS::Lambda::Function")[functionLogicalId(s, name)]?.Properties ??
    {}) as FunctionProps;

/** The resources the function's role may call GetSecretValue on. */
function readableSecrets(s: Synth, name: string): unknown[] {
  const role = propsOf(s, name).Role?.["Fn::GetAtt"][0];
  return Object.values(resourcesOf(s.template, "AWS::IAM::Policy"))
    .filter((p) => ((p.Properties?.Roles ?? []) as { Ref: string }[]).some((r) => r.Ref === role))
    .flatMap((p) => ((p.Properties?.PolicyDocument ?? {}) as { Statement?: Statement[] }).Statement ?? [])
    .filter((st) => [st.Action].flat().includes("secretsmanager:GetSecretValue"))
    .flatMap((st) => [st.Resource].flat());
}

describe("external data plane: Redis credentials", () => {
  it("refuses a redisUrl with credentials, pointing at redisSecretArn and without echoing them", () => {
    let refusal: unknown;
    try {
      synth({ ...EXTERNAL_CONTEXT, redisUrl: "redis://:S3cretRedisPass@redis.example.com:6379" });
    } catch (err) {
      refusal = err;
    }
    expect(refusal).toBeInstanceOf(Error);
    expect((refusal as Error).message).toMatch(/redisUrl must not carry credentials.*redisSecretArn/);
    expect((refusal as Error).message).not.toContain("S3cretRedisPass");
  });

  it("with redisSecretArn, a function that uses Redis gets the secret's ARN and read access on it; none a credential", () => {
    const s = synth({ ...EXTERNAL_CONTEXT, redisSecretArn: REDIS_SECRET });
    for (const { name, uses } of functions) {
      const usesRedis = uses?.includes("redis") ?? false;
      expect(propsOf(s, name).Environment?.Variables?.REDIS_SECRET_ARN, name).toBe(
        usesRedis ? REDIS_SECRET : undefined,
      );
      expect(readableSecrets(s, name).includes(REDIS_SECRET), name).toBe(usesRedis);
    }
    const values = allFunctions(s).flatMap((f) => Object.values(f.Environment?.Variables ?? {}));
    expect(values.length).toBeGreaterThan(0);
    for (const v of values) expect(JSON.stringify(v)).not.toMatch(/[a-z]+:\/\/[^/"]*@/i);
  });
});

describe("external data plane: TLS", () => {
  const settings = (s: Synth) =>
    allFunctions(s).flatMap((f) =>
      TLS_KEYS.filter((k) => f.Environment?.Variables?.[k] !== undefined).map(
        (k) => `${k}=${f.Environment?.Variables?.[k]}`,
      ),
    );

  it("is on by default for Postgres, Redis and Kafka, and off only where asked (a private network)", () => {
    const byDefault = settings(synth({ ...EXTERNAL_CONTEXT, redisSecretArn: REDIS_SECRET }));
    for (const k of TLS_KEYS) expect(byDefault).toContain(`${k}=true`);
    expect(byDefault.filter((v) => !v.endsWith("=true"))).toEqual([]);
    const off = settings(
      synth({ ...EXTERNAL_CONTEXT, databaseSsl: "false", redisTls: "false", kafkaSsl: "false" }),
    );
    for (const k of TLS_KEYS) expect(off).toContain(`${k}=false`);
    expect(off.filter((v) => !v.endsWith("=false"))).toEqual([]);
  });
});
