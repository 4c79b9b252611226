// placeholder replaced when the host lab lands
import { Settings } from "../components/config";
import { NodeAddress } from "../components/topology";
import { Passwords } from "./localCluster";
export function canRunHosts(): { ok: boolean } { return { ok: false }; }
export async function hostsUp(_s: Settings, _log: (m: string) => void): Promise<{ nodes: NodeAddress[]; passwords: Passwords; caFile?: string }> { throw new Error("not yet"); }
export async function hostsDown(_log: (m: string) => void): Promise<void> {}
export function hostsWrap(): string[] { return []; }
