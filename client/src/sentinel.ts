/**
 * The Sentinel topology's backend: the client asks the Sentinels itself which node is the primary, talks
 * to that node over one node-redis connection, and moves to another primary when
 *  - a Sentinel announces `+switch-master` (a subscription on every Sentinel: a dead instance's Sentinel
 *    is silent, the others are not), or
 *  - a command times out, its connection drops or the node answers READONLY: the retry policy refreshes
 *    first, which asks every Sentinel at once (each bounded by `queryTimeoutMs`) and follows the answer
 *    with the newest config epoch.
 *
 * Why not node-redis's own `createSentinel` (@redis/client 6.3.1): on a silent primary (its instance
 * dead, packets dropped) the lab measured no write for more than 30 s. Its rediscovery asks the Sentinels
 * one after another in a fixed order, the dead instance's Sentinel first, each with the full connect
 * timeout (5 s by default), and kept re-opening its Sentinel subscription in a loop while commands
 * waited for it. Asking all Sentinels at once, with a short timeout, costs one timeout in all.
 */
import { createClient, SocketClosedUnexpectedlyError } from "redis";
import { withTimeout } from "./deadlines";
import { TopologyChangedError } from "./errors";
import type { RedisClientOptions } from "redis";
import type { NodeEndpoint } from "./contract";

type Arg = string | Buffer;

export interface SentinelBackendOptions {
  masterName: string;
  sentinels: NodeEndpoint[];
  /** Every data-node connection's options but its address (auth, TLS, timeouts, reconnects, types). */
  node: RedisClientOptions;
  /** What a connection to a Sentinel needs: its credentials and TLS. */
  sentinelAuth: { username: string; password: string; tls?: { ca?: string } };
  /** How long one Sentinel may take to connect and answer before it counts as unreachable. */
  queryTimeoutMs: number;
  onError: (e: Error) => void;
  /** Told of each move to another primary, and whether the Sentinels announced it or a refresh found it. */
  onMove?: (how: "announced" | "found") => void;
}

/** What one Sentinel says of the master name. */
export interface SentinelView {
  host: string;
  port: number;
  /** The master's config epoch: it grows with every failover, so the highest is the newest view. */
  epoch: number;
  /** Sentinel's flags for the master (`master`, `s_down`, `o_down`, ...). */
  flags: string[];
}

/**
 * SENTINEL MASTER's reply as a view: a map in RESP3 (node-redis's default; an object, or a Map with some
 * type mappings), field, value, ... in RESP2. Undefined when it is not one.
 */
export function parseSentinelMaster(reply: unknown): SentinelView | undefined {
  const f = new Map<string, string>();
  if (Array.isArray(reply)) for (let i = 0; i + 1 < reply.length; i += 2) f.set(String(reply[i]), String(reply[i + 1]));
  else if (reply instanceof Map) for (const [k, v] of reply) f.set(String(k), String(v));
  else if (typeof reply === "object" && reply !== null) for (const [k, v] of Object.entries(reply)) f.set(k, String(v));
  else return undefined;
  const host = f.get("ip");
  const port = Number(f.get("port"));
  const epoch = Number(f.get("config-epoch") ?? "0");
  if (!host || !Number.isInteger(port) || port <= 0) return undefined;
  return { host, port, epoch: Number.isFinite(epoch) ? epoch : 0, flags: (f.get("flags") ?? "").split(",") };
}

/**
 * The primary to follow among the Sentinels' answers: the newest config epoch wins (a Sentinel that has
 * not yet heard of a failover still names the old primary with an older epoch); at the same epoch, one
 * that no Sentinel sees down.
 */
export function choosePrimary(views: ReadonlyArray<SentinelView | undefined>): SentinelView | undefined {
  const seen = views.filter((v): v is SentinelView => v !== undefined);
  const down = (v: SentinelView) => v.flags.includes("s_down") || v.flags.includes("o_down");
  return seen.sort((a, b) => b.epoch - a.epoch || Number(down(a)) - Number(down(b)))[0];
}

/**
 * Whether a refresh should move to the primary the Sentinels named. Not to one they see down: right after a
 * failover the majority that answers first may not have heard of it yet and still names the dead primary
 * (the client, told by +switch-master, is already on the new one). Not to an older config epoch than the
 * one the client last followed either.
 */
export function worthFollowing(named: SentinelView | undefined, followedEpoch: number): named is SentinelView {
  if (!named) return false;
  return !named.flags.includes("s_down") && !named.flags.includes("o_down") && named.epoch >= followedEpoch;
}

/** `+switch-master`'s message: `<name> <old ip> <old port> <new ip> <new port>`. */
export function parseSwitchMaster(message: string, masterName: string): { host: string; port: number } | undefined {
  const [name, , , host, port] = message.trim().split(/\s+/);
  const p = Number(port);
  return name === masterName && host && Number.isInteger(p) && p > 0 ? { host, port: p } : undefined;
}

export function sentinelBackend(o: SentinelBackendOptions) {
  const makeNode = (host: string, port: number) => {
    const client = createClient({ ...o.node, socket: { ...o.node.socket, host, port } });
    client.on("error", o.onError);
    return client;
  };
  type NodeClient = ReturnType<typeof makeNode>;
  const sentinelSocket = (s: NodeEndpoint) => ({
    host: s.host,
    port: s.port,
    connectTimeout: o.queryTimeoutMs,
    ...(o.sentinelAuth.tls ? { tls: true as const, ca: o.sentinelAuth.tls.ca, rejectUnauthorized: true } : {}),
  });
  const auth = { username: o.sentinelAuth.username, password: o.sentinelAuth.password };

  let current: { host: string; port: number; client: NodeClient; connected: Promise<unknown> } | undefined;
  let refreshing: Promise<void> | undefined;
  /** The config epoch of the last primary followed from the Sentinels' answers. */
  let followedEpoch = 0;
  let closed = false;
  const subscribers: Array<{ destroy(): void }> = [];

  /** Asks one Sentinel over a short-lived connection; undefined when it cannot answer in time. */
  const ask = async (s: NodeEndpoint): Promise<SentinelView | undefined> => {
    const client = createClient({ ...auth, socket: { ...sentinelSocket(s), reconnectStrategy: false } });
    client.on("error", () => undefined);
    try {
      await withTimeout(client.connect(), o.queryTimeoutMs);
      return parseSentinelMaster(
        await withTimeout(client.sendCommand(["SENTINEL", "MASTER", o.masterName]), o.queryTimeoutMs),
      );
    } catch {
      return undefined;
    } finally {
      client.destroy();
    }
  };
  /**
   * Asks every Sentinel at once; answers once a majority has answered (or all have tried), so a dead
   * instance's Sentinel costs nothing while the others are up.
   */
  const askAll = (): Promise<SentinelView | undefined> =>
    new Promise((resolve) => {
      const views: SentinelView[] = [];
      const majority = Math.floor(o.sentinels.length / 2) + 1;
      let tried = 0;
      for (const s of o.sentinels)
        void ask(s).then((v) => {
          tried++;
          if (v) views.push(v);
          if (views.length >= majority || tried === o.sentinels.length) resolve(choosePrimary(views));
        });
    });

  /**
   * Moves to `host:port` if that is not already the primary; commands queue until it is connected.
   * Resolves once connected (rejects when node-redis gives up reconnecting).
   */
  const follow = (host: string, port: number, how?: "announced" | "found"): Promise<unknown> => {
    if (current && current.host === host && current.port === port) return current.connected;
    const old = current;
    if (old && how) o.onMove?.(how);
    const client = makeNode(host, port);
    const connected = client.connect();
    current = { host, port, client, connected };
    // destroy(), not close(): a silent old primary would never answer what close() waits for.
    old?.client.destroy();
    return connected;
  };

  const refresh = (): Promise<void> =>
    (refreshing ??= (async () => {
      try {
        const named = await askAll();
        if (worthFollowing(named, followedEpoch) && !closed) {
          followedEpoch = named.epoch;
          follow(named.host, named.port, "found").catch((e: Error) => o.onError(e));
        }
      } finally {
        refreshing = undefined;
      }
    })());

  return {
    async send(_key: string | undefined, _readonly: boolean, args: Arg[], signal?: AbortSignal): Promise<unknown> {
      if (!current) throw new SocketClosedUnexpectedlyError();
      const client = current.client;
      try {
        return await (signal ? client.sendCommand(args, { abortSignal: signal }) : client.sendCommand(args));
      } catch (e) {
        // The client moved to another primary meanwhile and closed this connection: to the retry policy
        // that is a dropped connection (the command may have reached the old primary).
        if (current && current.client !== client) throw new TopologyChangedError(`${current.host}:${current.port}`);
        throw e;
      }
    },
    refresh,
    async connect(): Promise<void> {
      const named = await askAll();
      if (!named)
        throw new Error(
          `none of the Sentinels (${o.sentinels.map((s) => `${s.host}:${s.port}`).join(", ")}) named a primary for ${o.masterName}`,
        );
      followedEpoch = named.epoch;
      const connected = follow(named.host, named.port);
      for (const s of o.sentinels) {
        // A Sentinel that is down now subscribes once it is back (node-redis re-subscribes on reconnect).
        const sub = createClient({ ...auth, socket: { ...sentinelSocket(s), reconnectStrategy: () => 1000 } });
        sub.on("error", () => undefined);
        subscribers.push(sub);
        sub
          .connect()
          .then(() =>
            sub.subscribe("+switch-master", (message) => {
              const to = parseSwitchMaster(message, o.masterName);
              if (to && !closed) follow(to.host, to.port, "announced").catch((e: Error) => o.onError(e));
            }),
          )
          .catch(() => undefined);
      }
      await connected;
    },
    async close(): Promise<void> {
      closed = true;
      current?.client.destroy();
      for (const sub of subscribers) sub.destroy();
    },
  };
}
