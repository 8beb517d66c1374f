export type LogLevel = "info" | "warn" | "error";
export type RunnerLog = (level: LogLevel, message: string, fields?: Record<string, unknown>) => void;

/** Human-readable lines for a developer's terminal; handlers' own JSON logs go straight to stdout. */
export const consoleLog: RunnerLog = (level, message, fields) => {
  const line = `[local] ${message}${fields && Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : ""}`;
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
};
