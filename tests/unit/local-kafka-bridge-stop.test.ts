import { describe, expect, it, vi } from "vitest";
import { functions } from "../../functions/manifest.ts";

// A consumer whose disconnect never settles: what kafkajs does while it retries brokers that are gone.
const disconnects: string[] = [];
vi.mock("kafkajs", async (importOriginal) => ({
  ...(await importOriginal<typeof import("kafkajs")>()),
  Kafka: class {
    consumer({ groupId }: { groupId: string }) {
      return {
        connect: async () => {},
        subscribe: async () => {},
        run: async () => {},
        disconnect: () => {
          disconnects.push(groupId);
          return new Promise(() => {});
        },
      };
    }
  },
}));

const { startKafkaBridge } = await import("../../local/kafka-bridge.ts");

describe("local Kafka bridge shutdown", () => {
  it("asks every consumer to leave, then stops within its bound even if they never do", async () => {
    const logged: string[] = [];
    const bridge = await startKafkaBridge({
      brokers: ["127.0.0.1:1"],
      functions,
      invoke: async () => undefined,
      log: (level, message) => logged.push(`${level}: ${message}`),
      stopTimeoutMs: 200,
    });
    const started = performance.now();
    await bridge.stop();
    const took = performance.now() - started;
    expect(took).toBeGreaterThanOrEqual(190);
    expect(took).toBeLessThan(1000);
    const consuming = functions.filter((f) => f.kafkaTopic).map((f) => `local-${f.name}`);
    expect(consuming.length).toBeGreaterThan(0);
    expect(disconnects).toEqual(consuming);
    expect(logged).toContain(
      "warn: kafka: consumers did not leave their groups within 200 ms; stopping anyway",
    );
  });
});
