import { Duration, RemovalPolicy, Validations } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as rds from "aws-cdk-lib/aws-rds";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { Construct } from "constructs";
import { parseConfig } from "#chat/config.ts";
import { sessionSettingsSql } from "#chat/db-session-settings.ts";
import type { ChatContext } from "../context.ts";
import { physicalName } from "../names.ts";
import type { Network } from "./network.ts";

export const DB_PORT = 5432;
export const DB_NAME = "chat";
/** The role the functions connect as (rows only); the migrations create and grant it as the owner, chat_admin. */
export const APP_DB_USER = "chat_app";
/** gp3 storage at creation, and the ceiling storage autoscaling may grow it to. */
export const ALLOCATED_STORAGE_GIB = 20;
export const MAX_ALLOCATED_STORAGE_GIB = 100;

/**
 * RDS for PostgreSQL 17 behind RDS Proxy. The credentials live in a generated Secrets Manager secret (RDS format);
 * functions read it at init and connect to the proxy with TLS (the proxy's certificate is ACM-issued, so Node
 * trusts it without the RDS CA bundle). Only the proxy (and the rotation functions) can reach the instance. Two
 * users, each with its own secret rotated in place: the owner (the migrations) and the application role (every
 * function), which may read and write rows and nothing else.
 */
export class Database extends Construct {
  /** The owner's (master) credentials: the deploy-time migrations only. */
  readonly secret: secretsmanager.ISecret;
  /** The application role's credentials: every function that reaches Postgres. */
  readonly appSecret: secretsmanager.ISecret;
  /** Its rotation, which logs in as the role: it must wait for the migrations that create it. */
  readonly appSecretRotation?: secretsmanager.SecretRotation;
  /** The owner's rotation: its first run (at once) must not change the password under the migrations. */
  readonly masterSecretRotation?: secretsmanager.SecretRotation;
  readonly proxy: rds.DatabaseProxy;
  readonly instance: rds.DatabaseInstance;

  constructor(scope: Construct, id: string, props: { network: Network; ctx: ChatContext }) {
    super(scope, id);
    const { network, ctx } = props;
    const vpc = network.vpc;
    const dbSg = new ec2.SecurityGroup(this, "DbSg", {
      vpc,
      description: "postgres: 5432 from the proxy and the rotation function only",
      allowAllOutbound: false,
    });
    const proxySg = new ec2.SecurityGroup(this, "ProxySg", {
      vpc,
      description: "rds proxy: 5432 from the functions, 5432 to the database",
      allowAllOutbound: false,
    });

    // The master credentials, as Credentials.fromGeneratedSecret would make them, but a construct of our own: a
    // retained instance keeps its data, and must keep the only copy of its master password too.
    const masterSecret = new rds.DatabaseSecret(this, "MasterSecret", { username: "chat_admin" });
    if (ctx.deletionProtection) masterSecret.applyRemovalPolicy(RemovalPolicy.RETAIN);

    this.instance = new rds.DatabaseInstance(this, "Instance", {
      engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_17 }),
      instanceType: new ec2.InstanceType(ctx.dbInstanceType),
      vpc,
      vpcSubnets: network.subnets,
      securityGroups: [dbSg],
      port: DB_PORT,
      databaseName: DB_NAME,
      credentials: rds.Credentials.fromSecret(masterSecret),
      storageType: rds.StorageType.GP3,
      allocatedStorage: ALLOCATED_STORAGE_GIB,
      maxAllocatedStorage: MAX_ALLOCATED_STORAGE_GIB,
      storageEncrypted: true,
      multiAz: ctx.dbMultiAz,
      deletionProtection: ctx.deletionProtection,
      backupRetention: Duration.days(7),
      iamAuthentication: true,
      autoMinorVersionUpgrade: true,
      removalPolicy: ctx.deletionProtection ? RemovalPolicy.RETAIN : RemovalPolicy.SNAPSHOT,
    });
    if (!this.instance.secret) throw new Error("secret credentials always attach a secret");
    this.secret = this.instance.secret;
    // Attached: the secret carries the instance's host, port and dbname, as the owner's does.
    const appSecret = new rds.DatabaseSecret(this, "AppSecret", { username: APP_DB_USER });
    if (ctx.deletionProtection) appSecret.applyRemovalPolicy(RemovalPolicy.RETAIN);
    this.appSecret = appSecret.attach(this.instance);

    this.proxy = this.instance.addProxy("Proxy", {
      // Proxy names are unique per account and region: one per stack, not the construct id ("Proxy").
      dbProxyName: physicalName(this, 60),
      vpc,
      vpcSubnets: network.subnets,
      securityGroups: [proxySg],
      secrets: [this.secret, this.appSecret],
      requireTLS: true,
      // A borrow is the proxy's side of a pool checkout: bounded as the pool bounds one (DB_CONNECT_TIMEOUT_MS), not
      // past the functions' timeouts, so a used-up proxy pool fails a request fast (503) instead of holding it.
      borrowTimeout: Duration.seconds(Math.ceil(parseConfig({}).DB_CONNECT_TIMEOUT_MS / 1000)),
      // Lambda opens many short-lived connections; the proxy multiplexes them onto a few server connections.
      maxConnectionsPercent: 90,
      idleClientTimeout: Duration.minutes(15),
      // The proxy refuses session settings as startup parameters (the functions run with DATABASE_PROXY=true
      // and send none): it sets the config's defaults on each server connection it opens instead.
      initQuery: sessionSettingsSql(parseConfig({})),
    });
    // addProxy already opened proxy → database; the functions may reach only the proxy.
    this.proxy.connections.allowFrom(network.clients.postgres, ec2.Port.tcp(DB_PORT), "functions to proxy");

    if (ctx.dbSecretRotationDays > 0) {
      const rotationSg = new ec2.SecurityGroup(this, "RotationSg", {
        vpc,
        description: "secret rotation: 5432 to the database, 443 to Secrets Manager",
        allowAllOutbound: false,
      });
      const rotation = {
        automaticallyAfter: Duration.days(ctx.dbSecretRotationDays),
        endpoint: network.secretsManager,
        vpc,
        vpcSubnets: network.subnets,
        securityGroup: rotationSg,
      };
      this.masterSecretRotation = this.instance.addRotationSingleUser(rotation);
      // A role may change its own password: single-user rotation needs no more than the role has.
      this.appSecretRotation = new secretsmanager.SecretRotation(this, "AppSecretRotation", {
        ...rotation,
        application: secretsmanager.SecretRotationApplication.POSTGRES_ROTATION_SINGLE_USER,
        secret: this.appSecret,
        target: this.instance,
      });
      network.secretsManager.connections.allowDefaultPortFrom(rotationSg, "rotation to Secrets Manager");
    } else {
      for (const secret of [masterSecret, appSecret])
        Validations.of(secret).acknowledge({
          id: "AwsSolutions-SMG4",
          reason: "Rotation switched off with -c dbSecretRotationDays=0 (e.g. a short-lived test stack).",
        });
    }

    Validations.of(this.instance).acknowledge({
      id: "AwsSolutions-RDS11",
      reason: "Default port is fine: the instance is in isolated subnets and its SG admits only the proxy.",
    });
    if (!ctx.dbMultiAz)
      Validations.of(this.instance).acknowledge({
        id: "AwsSolutions-RDS3",
        reason: "Single-AZ is the low-cost default; production deploys pass -c dbMultiAz=true.",
      });
    if (!ctx.deletionProtection)
      Validations.of(this.instance).acknowledge({
        id: "AwsSolutions-RDS10",
        reason:
          "Off by default so dev stacks can be destroyed (a final snapshot is kept); -c deletionProtection=true.",
      });
  }
}
