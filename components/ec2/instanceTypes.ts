/**
 * What the stack needs to know about an EC2 instance type: its memory (to derive a safe `maxmemory`) and
 * its CPU architecture (to pick the AMI). A deploy asks AWS (`factsFromAws`, from getInstanceType); the
 * local mode and the lab, which have no AWS, use the family table below.
 *
 * Memory follows AWS's family ratios (c: 2 GiB per vCPU, m: 4, r: 8; burstable t3/t4g by size),
 * which hold for every current generation of those families. Anything else is "unknown" and the
 * stack then asks for an explicit `maxmemory` instead of guessing.
 */

export type Architecture = "x86_64" | "arm64";

export interface InstanceTypeInfo {
  /** Total memory in bytes, when the family is one we can size. */
  memoryBytes?: number;
  architecture: Architecture;
}

const GIB = 1024 ** 3;

/** vCPUs per size for the c/m/r families (".large" = 2 vCPUs). */
const VCPUS: Record<string, number> = {
  large: 2,
  xlarge: 4,
  "2xlarge": 8,
  "4xlarge": 16,
  "8xlarge": 32,
  "12xlarge": 48,
  "16xlarge": 64,
  "24xlarge": 96,
};

const GIB_PER_VCPU: Record<string, number> = { c: 2, m: 4, r: 8 };

/** Burstable families: memory by size. */
const BURSTABLE_GIB: Record<string, number> = {
  nano: 0.5,
  micro: 1,
  small: 2,
  medium: 4,
  large: 8,
  xlarge: 16,
  "2xlarge": 32,
};

/** `r7g.large` -> family `r7g`, size `large`; generation >= 5, optional a/g/i processor and d/n suffixes. */
const SIZED_FAMILY = /^([cmr])([5-8])([agi]?)(?:d|n|dn)?\.([0-9]*x?large)$/;
const BURSTABLE = /^t(3|3a|4g)\.(nano|micro|small|medium|large|xlarge|2xlarge)$/;

/** Graviton families carry a `g` in the attribute letters after the generation digit (m7g, r6gd, t4g, im4gn). */
export function architectureOf(instanceType: string): Architecture {
  const family = instanceType.split(".")[0] ?? "";
  return /^[a-z]+[0-9]+[a-z]*g[a-z]*$/.test(family) ? "arm64" : "x86_64";
}

export function describeInstanceType(instanceType: string): InstanceTypeInfo {
  const architecture = architectureOf(instanceType);
  const sized = SIZED_FAMILY.exec(instanceType);
  if (sized) {
    const [, category, , , size] = sized;
    const vcpus = VCPUS[size];
    const perVcpu = GIB_PER_VCPU[category];
    if (vcpus !== undefined && perVcpu !== undefined) {
      return { architecture, memoryBytes: vcpus * perVcpu * GIB };
    }
  }
  const burst = BURSTABLE.exec(instanceType);
  if (burst) {
    const gib = BURSTABLE_GIB[burst[2]];
    if (gib !== undefined) return { architecture, memoryBytes: gib * GIB };
  }
  return { architecture };
}

/** Share of the instance's RAM given to Redis by default: the rest is fork headroom for RDB/AOF rewrites. */
export const DEFAULT_MAXMEMORY_FRACTION = 0.65;

/** Default `maxmemory` in bytes, rounded down to whole MiB. */
export function defaultMaxmemoryBytes(memoryBytes: number): number {
  const mib = 1024 ** 2;
  return Math.floor((memoryBytes * DEFAULT_MAXMEMORY_FRACTION) / mib) * mib;
}

/** The facts from AWS's description of a type (`aws.ec2.getInstanceType`): memory in MiB, architectures. */
export function factsFromAws(memorySizeMib: number, supportedArchitectures: string[]): InstanceTypeInfo {
  return {
    memoryBytes: memorySizeMib * 1024 ** 2,
    architecture: supportedArchitectures.includes("arm64") ? "arm64" : "x86_64",
  };
}
