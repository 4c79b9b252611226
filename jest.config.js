/** Unit tests (Pulumi mocks) and integration tests (namespaced hosts) share one config. */
module.exports = {
  preset: "ts-jest",
  testEnvironment: "node",
  // Pulumi's runtime keeps process-wide state (protobuf registries) that every test file shares.
  testEnvironmentOptions: { globalsCleanup: "off" },
  testMatch: ["<rootDir>/tests/**/*.test.ts"],
  // Integration suites boot real redis-server clusters: give them room.
  testTimeout: 120000,
  // Types are checked once by `tsc --noEmit` (npm test runs it first); jest only transpiles.
  transform: { "^.+\\.ts$": ["ts-jest", { diagnostics: false }] },
};
