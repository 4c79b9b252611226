/**
 * The end of run.sh's output names each failed test and why (CI logs are often read from the end only).
 */
import { failureReport, shortMessage } from "../../lab/jestFailures";

describe("lab/jestFailures", () => {
  const result = (assertions: { fullName: string; status: string; failureMessages: string[] }[], message = "") => ({
    testResults: [{ name: "/x/tests/integration/cluster.test.ts", message, assertionResults: assertions }],
  });

  test("a failed test is named with its message's first lines, without colours or node_modules frames", () => {
    const message =
      "\u001b[2mexpect(\u001b[22mreceived\u001b[2m).toEqual(\u001b[22mexpected\u001b[2m)\u001b[22m\n\n" +
      "Expected: [1]\nReceived: [0]\n" +
      "    at Object.<anonymous> (/x/tests/integration/metricsScenarios.ts:219:30)\n" +
      "    at Promise.then.completed (/x/node_modules/jest-circus/build/utils.js:298:28)\n";
    const report = failureReport([
      result([
        { fullName: "prod cluster a passing one", status: "passed", failureMessages: [] },
        { fullName: "prod cluster under a known load", status: "failed", failureMessages: [message] },
      ]),
    ]);
    expect(report).toEqual([
      "FAILED prod cluster under a known load",
      "    expect(received).toEqual(expected)",
      "    Expected: [1]",
      "    Received: [0]",
      "        at Object.<anonymous> (/x/tests/integration/metricsScenarios.ts:219:30)",
    ]);
  });

  test("a suite that failed outside its tests (a beforeAll) is reported by file", () => {
    const report = failureReport([result([], "● Test suite failed to run\n\n  lab did not boot")]);
    expect(report).toEqual([
      "FAILED /x/tests/integration/cluster.test.ts (outside a test)",
      "    ● Test suite failed to run",
      "      lab did not boot",
    ]);
  });

  test("all passed: nothing is printed; long messages are cut", () => {
    expect(failureReport([result([{ fullName: "ok", status: "passed", failureMessages: [] }])])).toEqual([]);
    expect(shortMessage(Array.from({ length: 50 }, (_, i) => `line ${i}`).join("\n"))).toHaveLength(12);
  });
});
