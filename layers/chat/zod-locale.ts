import { en } from "zod/locales";
import { config } from "zod/mini";

/**
 * zod/mini installs no locale (classic zod installs English on first use): without this every issue's message
 * would be "Invalid input". Imported for its effect by every module that declares schemas. A named import of
 * `en` alone, so a bundle carries one locale, not zod's 60.
 */
config(en());
