/** Pure topology: slot plans, AZ placement, fixed addresses, subnet checks. */
import {
  addressedTopology,
  checkSubnets,
  planSlots,
  planTopology,
  planVpcSubnets,
  TOTAL_SLOTS,
} from "../../components/ec2/topology";

test("3 shards get redis-cli's ranges 0-5460 / 5461-10922 / 10923-16383", () => {
  expect(planSlots(3)).toEqual([
    { start: 0, end: 5460 },
    { start: 5461, end: 10922 },
    { start: 10923, end: 16383 },
  ]);
});

test.each([3, 4, 5, 6, 7, 10, 16, 100])("%i shards split all 16384 slots evenly and contiguously", (n) => {
  const ranges = planSlots(n);
  expect(ranges).toHaveLength(n);
  expect(ranges[0].start).toBe(0);
  expect(ranges[n - 1].end).toBe(TOTAL_SLOTS - 1);
  for (let i = 1; i < n; i++) expect(ranges[i].start).toBe(ranges[i - 1].end + 1);
  const sizes = ranges.map((r) => r.end - r.start + 1);
  expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
});

test.each([
  [3, 1, 3],
  [3, 2, 3],
  [4, 1, 3],
  [6, 1, 2],
  [5, 2, 3],
])("%i shards x %i replicas over %i AZs: masters first, no copy of a shard shares an AZ", (shards, replicas, azs) => {
  const nodes = planTopology(shards, replicas, azs);
  expect(nodes).toHaveLength(shards * (1 + replicas));
  expect(nodes.slice(0, shards).every((n) => n.role === "master")).toBe(true);
  for (let k = 0; k < shards; k++) {
    const copies = nodes.filter((n) => n.shard === k);
    expect(copies).toHaveLength(1 + replicas);
    expect(new Set(copies.map((c) => c.azIndex)).size).toBe(copies.length);
    for (const r of copies.filter((c) => c.role === "replica")) expect(r.masterIndex).toBe(k);
  }
});

test("more replicas than other AZs is refused", () => {
  expect(() => planTopology(3, 2, 2)).toThrow(/need 3 availability zones/);
});

test("fixed addresses: host offset + order within the AZ's subnet", () => {
  const nodes = addressedTopology(3, 1, ["10.40.0.0/19", "10.40.32.0/19", "10.40.64.0/19"], 10, 6379);
  expect(nodes.map((n) => `${n.node.name} ${n.ip}`)).toEqual([
    "shard0-0 10.40.0.10",
    "shard1-0 10.40.32.12",
    "shard2-0 10.40.64.14",
    "shard0-1 10.40.32.11",
    "shard1-1 10.40.64.13",
    "shard2-1 10.40.0.15",
  ]);
  // Adding a shard renames nothing and moves no address: the existing nodes keep theirs.
  const grown = addressedTopology(4, 1, ["10.40.0.0/19", "10.40.32.0/19", "10.40.64.0/19"], 10, 6379);
  const before = new Map(nodes.map((n) => [n.node.name, n.ip]));
  for (const n of grown.filter((g) => before.has(g.node.name))) expect(n.ip).toBe(before.get(n.node.name));
  expect(
    grown
      .map((n) => n.node.name)
      .filter((name) => !before.has(name))
      .sort(),
  ).toEqual(["shard3-0", "shard3-1"]);
  expect(planVpcSubnets("10.40.0.0/16", 3)).toEqual({
    privateCidrs: ["10.40.0.0/19", "10.40.32.0/19", "10.40.64.0/19"],
    publicCidrs: ["10.40.128.0/19", "10.40.160.0/19", "10.40.192.0/19"],
  });
});

test("subnet checks: one AZ, too few AZs for the replicas, no room for the addresses", () => {
  const a = { id: "subnet-a", availabilityZone: "az-a", cidrBlock: "10.0.0.0/24" };
  const b = { id: "subnet-b", availabilityZone: "az-b", cidrBlock: "10.0.1.0/24" };
  const tiny = { id: "subnet-t", availabilityZone: "az-c", cidrBlock: "10.0.2.0/28" };
  expect(checkSubnets([a, { ...a, id: "subnet-a2" }], 1, 3, 10).problems[0].problem).toMatch(/one availability zone/);
  expect(checkSubnets([a, b], 2, 3, 10).problems[0].problem).toMatch(/need 3 AZs/);
  expect(checkSubnets([a, b, tiny], 1, 5, 10).problems).toEqual([]); // hosts .10-.14 fit below the broadcast .15
  expect(checkSubnets([a, b, tiny], 1, 6, 10).problems[0].problem).toMatch(/no room for 6 static addresses/);
  const ok = checkSubnets([a, b, { ...a, id: "subnet-a3" }], 1, 3, 10);
  expect(ok.problems).toEqual([]);
  expect(ok.perAz.map((s) => s.id)).toEqual(["subnet-a", "subnet-b"]);
});
