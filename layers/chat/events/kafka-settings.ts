import type { Config } from "../config.ts";
import { readJsonSecret } from "../secrets.ts";
import { withTimeout } from "../timeout.ts";
import { type KafkaClientOptions, resolveBrokers } from "./kafka-client.ts";

/** Bound on the secret's read, as on the MSK broker look-up: a hung one fails, and is tried again next time. */
const SECRET_TIMEOUT_MS = 5000;

/** SASL/SCRAM credentials from Secrets Manager: the `{"username","password"}` secret Lambda's event source reads too. */
async function scramCredentials(arn: string): Promise<{ username: string; password: string }> {
  const secret = await readJsonSecret<{ username?: unknown; password?: unknown }>(arn);
  if (typeof secret?.username !== "string" || typeof secret.password !== "string")
    throw new Error("the Kafka secret must hold a username and a password");
  return { username: secret.username, password: secret.password };
}

/**
 * How this process reaches Kafka, from its config: the brokers (listed, or looked up from the MSK cluster), TLS,
 * and the auth with its credentials. The producer and the deploy-time topic creation share it.
 */
export async function kafkaClientOptions(
  cfg: Config,
  getScram: (arn: string) => Promise<{ username: string; password: string }> = scramCredentials,
): Promise<KafkaClientOptions> {
  const brokers = await resolveBrokers({ brokers: cfg.KAFKA_BROKERS, mskClusterArn: cfg.MSK_CLUSTER_ARN });
  const arn = cfg.KAFKA_AUTH === "scram-sha-512" ? cfg.KAFKA_SECRET_ARN : undefined;
  const scram = arn
    ? await withTimeout(
        getScram(arn),
        SECRET_TIMEOUT_MS,
        () => new Error(`the Kafka secret was not read within ${SECRET_TIMEOUT_MS} ms`),
      )
    : undefined;
  return {
    brokers,
    clientId: cfg.KAFKA_CLIENT_ID,
    ssl: cfg.KAFKA_SSL || cfg.KAFKA_AUTH === "msk-iam",
    auth: cfg.KAFKA_AUTH,
    region: cfg.MSK_CLUSTER_ARN?.split(":")[3] ?? process.env.AWS_REGION,
    ...(scram ? { scram } : {}),
  };
}
