// Type-aware lint for the whole TypeScript tree. Formatting is Prettier's job (npm run format).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  {
    ignores: ["node_modules/", "client/dist/", "bin/", ".local/", "bench-results/", "coverage/", "**/*.js", "**/*.mjs"],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // A Pulumi program loses an error thrown in a promise nobody awaits.
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-explicit-any": "error",
      // Async functions without await are how this code satisfies Promise-returning interfaces.
      "@typescript-eslint/require-await": "off",
    },
  },
  {
    // The Redis Cloud binding keeps the shape of Pulumi's generated SDKs (tfgen output), so the published
    // package can replace it unchanged; only the rules generated code itself breaks are relaxed there.
    files: ["sdk/**/*.ts"],
    rules: {
      "@typescript-eslint/no-explicit-any": "off",
      "@typescript-eslint/no-unsafe-assignment": "off",
      "@typescript-eslint/no-unsafe-member-access": "off",
      "@typescript-eslint/no-unsafe-argument": "off",
      "@typescript-eslint/no-unsafe-return": "off",
      "@typescript-eslint/no-unsafe-call": "off",
      "@typescript-eslint/no-require-imports": "off",
      "@typescript-eslint/no-namespace": "off",
      "@typescript-eslint/no-unnecessary-type-assertion": "off",
    },
  },
);
