/** The dev stack's resource graph (names, types, URNs, inputs) equals the reviewed fixture. */
import { runStack } from "./support/stackHarness";
import { expectedGraph, graphOf } from "./support/graph";

test("the dev stack registers exactly the recorded resources with the recorded inputs", async () => {
  const run = await runStack("dev");
  expect(run.error).toBeUndefined();
  const actual = graphOf(run.resources);
  expect(actual.length).toBeGreaterThan(0);
  expect(actual).toEqual(expectedGraph("dev", actual));
});
