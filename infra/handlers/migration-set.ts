import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Names and contents of the SQL migrations in `dir`. The stack sets it as the migrations resource's `MigrationsHash`
 * (a new or edited migration re-runs the resource); the deploy handler computes it over the copy in its bundle. One
 * function for both, so the two agree on what "the same set" means.
 */
export function migrationsHash(dir: string): string {
  const h = createHash("sha256");
  for (const name of readdirSync(dir).sort())
    h.update(name)
      .update("\0")
      .update(readFileSync(join(dir, name)));
  return h.digest("hex");
}

/** The parts of a Create or Update event the decision reads. */
export interface MigrationEvent {
  RequestType: "Create" | "Update";
  ResourceProperties: Record<string, unknown>;
  OldResourceProperties?: Record<string, unknown>;
}

export type MigrationDecision = { migrate: true } | { migrate: false; reason: string };

/**
 * Whether a Create or Update applies the migrations the handler bundles (`bundledHash`).
 *
 * CloudFormation rolls a failed update back by sending an Update with the old properties to the handler that is
 * still the new one (the resource rolls back before the function it depends on). Migrating then would retry what just
 * failed, fail the rollback too and leave the stack UPDATE_ROLLBACK_FAILED; so an Update from this set (old
 * properties) to another one (new properties) succeeds without migrating. Migrations are expand-only: the older
 * release runs on the newer schema anyway (docs/deploy.md, upgrading).
 *
 * Any other request for a set the handler does not bundle means the bundle is not what the stack hashed: that fails,
 * rather than reporting success without migrating. A request with no hash migrates.
 */
export function migrationDecision(event: MigrationEvent, bundledHash: string): MigrationDecision {
  const requested = event.ResourceProperties.MigrationsHash;
  if (requested === undefined || requested === bundledHash) return { migrate: true };
  if (event.RequestType === "Update" && event.OldResourceProperties?.MigrationsHash === bundledHash)
    return {
      migrate: false,
      reason: "rollback to an older set of migrations: the schema stays as this release left it",
    };
  throw new Error(
    `asked for migrations ${requested}, but this handler bundles ${bundledHash} (and this is no rollback from it)`,
  );
}
