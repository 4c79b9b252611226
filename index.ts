/**
 * redis-stack: production Redis in one `pulumi up`.
 * Reads this stack's config (validated; bad input fails here, at preview), builds either the
 * Redis Cloud database or the self-hosted EC2 cluster, and exports the same connection contract.
 */
import * as pulumi from "@pulumi/pulumi";
import { deploy } from "./components/stack";

export = async () => deploy(pulumi.getProject(), pulumi.getStack());
