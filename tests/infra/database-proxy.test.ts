import { describe, expect, it } from "vitest";
import { configSchema, parseConfig } from "#chat/config.ts";
import { buildPool } from "#chat/db/pool.ts";
import { sessionSettingsSql } from "#chat/db-session-settings.ts";
import { ANSWER_MARGIN_MS } from "#chat/request-deadline.ts";
import { resourcesOf, synth } from "./synth.ts";

/**
 * RDS Proxy refuses session settings sent as startup parameters (`0A000 Feature not supported: RDS Proxy
 * currently doesn't support the option statement_timeout`): every connection of a function would fail. So the
 * functions behind it send none, and the proxy's init query sets them on its server connections.
 */
describe("functions behind RDS Proxy (dataPlane=aws)", () => {
  const s = synth();
  const functionsWithDatabase = Object.values(resourcesOf(s.template, "AWS::Lambda::Function"))
    .map(
      (r) =>
        (r.Properties?.Environment as { Variables?: Record<string, string> } | undefined)?.Variables ?? {},
    )
    .filter((env) => "DATABASE_HOST" in env);

  it("the proxy's init query sets the settings the pool would otherwise send", () => {
    const groups = Object.values(resourcesOf(s.template, "AWS::RDS::DBProxyTargetGroup"));
    expect(groups).toHaveLength(1);
    const info = groups[0]?.Properties?.ConnectionPoolConfigurationInfo as { InitQuery?: string };
    expect(info.InitQuery).toBe(sessionSettingsSql(configSchema.parse({})));
    expect(info.InitQuery).toBe("SET statement_timeout = 5000; SET lock_timeout = 3000");
  });

  it("the proxy's borrow wait is no longer than the pool's checkout wait, well under every HTTP function's timeout", () => {
    const groups = Object.values(resourcesOf(s.template, "AWS::RDS::DBProxyTargetGroup"));
    const info = groups[0]?.Properties?.ConnectionPoolConfigurationInfo as {
      ConnectionBorrowTimeout?: number;
    };
    const borrowMs = (info.ConnectionBorrowTimeout ?? 120) * 1000; // RDS's default: 120 s
    expect(borrowMs).toBeLessThanOrEqual(
      Math.ceil(configSchema.parse({}).DB_CONNECT_TIMEOUT_MS / 1000) * 1000,
    );
    const timeouts = Object.values(resourcesOf(s.template, "AWS::Lambda::Function"))
      .filter(
        (r) => "DATABASE_HOST" in ((r.Properties?.Environment as { Variables?: object })?.Variables ?? {}),
      )
      .map((r) => Number(r.Properties?.Timeout) * 1000);
    expect(timeouts.length).toBeGreaterThan(5);
    // room left, after a borrow that times out, for the request's answer (its deadline keeps a margin for that)
    for (const timeoutMs of timeouts) expect(borrowMs).toBeLessThan(timeoutMs - ANSWER_MARGIN_MS);
  });

  it("every function that reaches the database is told it goes through the proxy, and then sends no settings", () => {
    expect(functionsWithDatabase.length).toBeGreaterThan(5);
    for (const env of functionsWithDatabase) expect(env.DATABASE_PROXY).toBe("true");
    const cfg = parseConfig({ DATABASE_PROXY: "true" });
    const pool = buildPool("postgres://u@proxy.example:5432/chat", cfg);
    const options = (pool as unknown as { options: Record<string, unknown> }).options;
    for (const startupParameter of ["statement_timeout", "lock_timeout", "application_name"])
      expect(options[startupParameter]).toBeUndefined();
    void pool.end();
  });
});

describe("the database's names and what outlives the stack", () => {
  const proxyName = (context: Record<string, unknown>) => {
    const proxies = Object.values(resourcesOf(synth(context).template, "AWS::RDS::DBProxy"));
    expect(proxies).toHaveLength(1);
    return proxies[0]?.Properties?.DBProxyName as string;
  };

  it("names the proxy after its stack (proxy names are unique per account and region), as RDS allows", () => {
    const a = proxyName({ stackName: "ChatStaging" });
    const b = proxyName({ stackName: "ChatProd" });
    expect(a).not.toBe(b);
    for (const name of [a, b]) {
      // 1–60 characters: a letter first, then letters, digits and single hyphens, no hyphen last
      expect(name).toMatch(/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/);
      expect(name.length).toBeLessThanOrEqual(60);
    }
  });

  it("with deletionProtection the instance's master secret is retained with it; otherwise deleted with the stack", () => {
    const policyOfDbSecret = (context: Record<string, unknown>) => {
      const template = synth(context).template.toJSON() as {
        Resources: Record<
          string,
          { Type: string; DeletionPolicy?: string; Properties?: Record<string, unknown> }
        >;
      };
      const secrets = Object.entries(template.Resources).filter(
        ([, r]) =>
          r.Type === "AWS::SecretsManager::Secret" &&
          JSON.stringify(r.Properties?.GenerateSecretString ?? {}).includes("chat_admin"),
      );
      expect(secrets).toHaveLength(1);
      return secrets[0]?.[1].DeletionPolicy;
    };
    expect(policyOfDbSecret({ deletionProtection: true })).toBe("Retain");
    expect(policyOfDbSecret({})).not.toBe("Retain");
  });
});
