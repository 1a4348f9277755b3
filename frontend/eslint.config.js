// ESLint for the page: the recommended JavaScript rules and typescript-eslint's type-aware ones.
import js from "@eslint/js";
import globals from "globals";
import tseslint from "typescript-eslint";

export default tseslint.config(
  // Build output, dependencies and the generated operations (checked by `npm run codegen:check` instead).
  { ignores: ["dist/", "node_modules/", "src/generated/"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      globals: { ...globals.browser },
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
  },
  {
    // Configuration files run in Node and are outside tsconfig.json's project.
    files: ["*.js", "*.ts"],
    ignores: ["src/**"],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: { ...globals.node } },
  },
);
