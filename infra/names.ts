import { Names } from "aws-cdk-lib";
import type { IConstruct } from "constructs";

/** A physical name unique per stack and path, lowercase letters/digits/single hyphens, starting with a letter. */
export function physicalName(scope: IConstruct, maxLength: number): string {
  const raw = Names.uniqueResourceName(scope, { maxLength: maxLength - 1, separator: "-" }).toLowerCase();
  const clean = raw
    .replace(/[^a-z0-9-]/g, "-")
    .replace(/-+/g, "-")
    .replace(/-$/, "");
  return /^[a-z]/.test(clean) ? clean : `c${clean}`.slice(0, maxLength);
}
