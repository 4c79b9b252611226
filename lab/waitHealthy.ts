/**
 * Runs `pulumi up`'s health wait (components/ec2/health.ts, the real AWS SDK reader) from inside the lab's
 * client namespace against the lab's AWS endpoint: credentials from IMDS, SigV4, the deployer's IAM
 * policy. Input: WAIT_HEALTHY = {"region", "timeoutSeconds", "nodes": ExpectedNode[]}; the SDK finds the
 * endpoint through AWS_ENDPOINT_URL_SSM and trusts the lab CA through NODE_EXTRA_CA_CERTS.
 * Prints the assessment as JSON; exits 1 with the error when the cluster is not healthy.
 */
import { ExpectedNode, ssmReader, waitForCluster } from "../components/ec2/health";

interface Input {
  region: string;
  timeoutSeconds: number;
  nodes: ExpectedNode[];
}

async function main(): Promise<void> {
  const input = JSON.parse(process.env.WAIT_HEALTHY ?? "{}") as Input;
  const a = await waitForCluster(input.nodes, ssmReader(input.region), {
    timeoutMs: input.timeoutSeconds * 1000,
    pollMs: 1000,
    log: (m) => console.error(m),
  });
  console.log(JSON.stringify(a));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
