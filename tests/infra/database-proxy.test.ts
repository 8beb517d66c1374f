import { describe, expect, it } from "vitest";
import { configSchema, parseConfig } from "#chat/config.ts";
import { buildPool } from "#chat/db/pool.ts";
import { sessionSettingsSql } from "#chat/db-session-settings.ts";
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
