/**
 * redis-stack-client's typed errors, and the classification of node-redis v6's real error classes
 * (instances of the classes `redis` exports, and a socket error Node itself raised).
 */
import { once } from "node:events";
import net from "node:net";
import {
  AbortError,
  BlobError,
  ClientClosedError,
  ClientOfflineError,
  CommandTimeoutDuringMaintenanceError,
  ConnectionTimeoutError,
  createClient,
  DisconnectsClientError,
  ErrorReply,
  MaxCommandRedirectionsError,
  MultiErrorReply,
  ReconnectStrategyError,
  RootNodesUnavailableError,
  SimpleError,
  SocketClosedUnexpectedlyError,
  SocketTimeoutDuringMaintenanceError,
  SocketTimeoutError,
  TimeoutError,
  WatchError,
} from "redis";
import { reconnectStrategy } from "../../../client/src/backoff";
import {
  isTransientRedisError,
  mergeSent,
  ReconnectGaveUpError,
  RedisStackError,
  RedisStackWriteError,
  RetryBudgetExceededError,
  wasSent,
  WriteFailedError,
  WriteOutcomeUnknownError,
} from "../../../client/src/errors";

const AggregateErrorCtor = (globalThis as unknown as { AggregateError: new (errors: unknown[]) => Error })
  .AggregateError;

const sysError = (code: string): Error => Object.assign(new Error(`connect ${code} 10.0.0.1:6379`), { code });

describe("typed errors", () => {
  test("keep their name, fields and cause", () => {
    const socket = new SocketClosedUnexpectedlyError();
    const gaveUp = new ReconnectGaveUpError(7, socket);
    expect(gaveUp).toBeInstanceOf(Error);
    expect(gaveUp).toBeInstanceOf(RedisStackError);
    expect(gaveUp.name).toBe("ReconnectGaveUpError");
    expect(gaveUp.retries).toBe(7);
    expect(gaveUp.cause).toBe(socket);
    expect(gaveUp.message).toBe("gave up reconnecting after 7 retries (SocketClosedUnexpectedlyError)");

    const budget = new RetryBudgetExceededError(4, 1234.6, sysError("ECONNREFUSED"));
    expect(budget.name).toBe("RetryBudgetExceededError");
    expect([budget.attempts, budget.elapsedMs]).toEqual([4, 1234.6]);
    expect(budget.message).toBe("retry budget exceeded after 4 attempts in 1235 ms (Error ECONNREFUSED)");
    expect(String(budget)).toMatch(/^RetryBudgetExceededError: /);
  });

  test("write errors say whether the write was applied, and share a base class", () => {
    const cause = new ClientOfflineError();
    const failed = new WriteFailedError("set", "Redis is unreachable", cause);
    const unknown = new WriteOutcomeUnknownError("INCRBY", "the connection dropped after sending", cause);
    for (const e of [failed, unknown]) {
      expect(e).toBeInstanceOf(RedisStackWriteError);
      expect(e).toBeInstanceOf(Error);
      expect(e.cause).toBe(cause);
    }
    expect([failed.name, failed.applied, failed.command]).toEqual(["WriteFailedError", false, "SET"]);
    expect([unknown.name, unknown.applied, unknown.command]).toEqual(["WriteOutcomeUnknownError", "unknown", "INCRBY"]);
    expect(failed.message).toBe("SET was not applied: Redis is unreachable (ClientOfflineError)");
    expect(unknown.message).toBe(
      "INCRBY may or may not have been applied: the connection dropped after sending (ClientOfflineError)",
    );
    expect(new WriteFailedError("DEL", "the write buffer is full").message).toBe(
      "DEL was not applied: the write buffer is full",
    );
  });

  test("never carry a key, a value or the cause's message", () => {
    // Redis echoes arguments in some replies, e.g. an unknown command's.
    const reply = new SimpleError("ERR unknown command 'SETT', with args beginning with: 'user:1' 's3cret'");
    const e = new WriteOutcomeUnknownError("SET user:1 s3cret", "sent, then the socket closed", reply);
    expect(e.command).toBe("SET");
    const shown = `${e.message} ${String(e)} ${JSON.stringify(e)}`;
    expect(shown).not.toMatch(/s3cret|user:1/);
    expect(new ReconnectGaveUpError(1, reply).message).not.toMatch(/s3cret/);
    expect(new RetryBudgetExceededError(1, 1, reply).message).not.toMatch(/s3cret/);
  });
});

describe("isTransientRedisError", () => {
  test.each([
    "CLUSTERDOWN The cluster is down",
    "CLUSTERDOWN Hash slot not served",
    "TRYAGAIN Multiple keys request during rehashing of slot",
    "LOADING Redis is loading the dataset in memory",
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
    "READONLY You can't write against a read only replica.",
    "MOVED 3999 10.0.1.12:6379",
    "ASK 3999 10.0.1.12:6379",
    "LOADING",
  ])("a %j reply is transient", (message) => {
    expect(isTransientRedisError(new SimpleError(message))).toBe(true);
    expect(isTransientRedisError(new BlobError(message))).toBe(true);
    expect(isTransientRedisError(new ErrorReply(message))).toBe(true);
  });

  test.each([
    "ERR wrong number of arguments for 'get' command",
    "WRONGTYPE Operation against a key holding the wrong kind of value",
    "NOSCRIPT No matching script",
    "NOAUTH Authentication required.",
    "OOM command not allowed when used memory > 'maxmemory'.",
    "LOADINGS is not LOADING",
    "ASKING",
    "ERR CLUSTERDOWN is not at the start",
  ])("a %j reply is not", (message) => {
    expect(isTransientRedisError(new SimpleError(message))).toBe(false);
  });

  test("a reply's prefix counts only on a reply, not on any Error", () => {
    expect(isTransientRedisError(new Error("CLUSTERDOWN The cluster is down"))).toBe(false);
    expect(isTransientRedisError(new MultiErrorReply([new SimpleError("LOADING x")], [0]))).toBe(false);
  });

  test.each([
    ["SocketClosedUnexpectedlyError", new SocketClosedUnexpectedlyError()],
    ["ConnectionTimeoutError", new ConnectionTimeoutError()],
    ["SocketTimeoutError", new SocketTimeoutError(1000)],
    ["TimeoutError", new TimeoutError()],
    ["CommandTimeoutDuringMaintenanceError", new CommandTimeoutDuringMaintenanceError(1000)],
    ["SocketTimeoutDuringMaintenanceError", new SocketTimeoutDuringMaintenanceError(1000)],
    ["ClientOfflineError", new ClientOfflineError()],
    ["RootNodesUnavailableError", new RootNodesUnavailableError()],
    ["MaxCommandRedirectionsError", new MaxCommandRedirectionsError(new SimpleError("MOVED 1 h:1"))],
    ["ReconnectStrategyError", new ReconnectStrategyError(new Error("stop"), sysError("ECONNREFUSED"))],
  ])("node-redis's %s is transient", (_name, e) => {
    expect(isTransientRedisError(e)).toBe(true);
  });

  test.each([
    ["ClientClosedError", new ClientClosedError()],
    ["DisconnectsClientError", new DisconnectsClientError()],
    ["AbortError", new AbortError()],
    ["WatchError", new WatchError()],
    ["a full queue", new Error("The queue is full")],
    ["ReconnectGaveUpError", new ReconnectGaveUpError(3, new SocketClosedUnexpectedlyError())],
    ["RetryBudgetExceededError", new RetryBudgetExceededError(3, 10, new SocketClosedUnexpectedlyError())],
    ["WriteFailedError", new WriteFailedError("SET", "x", new ClientOfflineError())],
    ["WriteOutcomeUnknownError", new WriteOutcomeUnknownError("SET", "x", new SocketClosedUnexpectedlyError())],
    ["a TypeError", new TypeError("x is not a function")],
  ])("%s is not", (_name, e) => {
    expect(isTransientRedisError(e)).toBe(false);
  });

  test.each([
    "ECONNRESET",
    "ECONNREFUSED",
    "ETIMEDOUT",
    "EPIPE",
    "EHOSTUNREACH",
    "ENETUNREACH",
    "EAI_AGAIN",
    "ECONNABORTED",
  ])("a socket error %s is transient", (code) => {
    expect(isTransientRedisError(sysError(code))).toBe(true);
  });

  test.each(["ENOTFOUND", "EACCES", "ERR_TLS_CERT_ALTNAME_INVALID", "DEPTH_ZERO_SELF_SIGNED_CERT"])(
    "a socket error %s is not",
    (code) => {
      expect(isTransientRedisError(sysError(code))).toBe(false);
    },
  );

  test("an AggregateError (connecting to several addresses) is transient when all its errors are", () => {
    expect(isTransientRedisError(new AggregateErrorCtor([sysError("ECONNREFUSED"), sysError("ENETUNREACH")]))).toBe(
      true,
    );
    expect(isTransientRedisError(new AggregateErrorCtor([sysError("ECONNREFUSED"), sysError("EACCES")]))).toBe(false);
    expect(isTransientRedisError(new AggregateErrorCtor([]))).toBe(false);
  });

  test("what is not an Error is not transient", () => {
    for (const v of [undefined, null, "ECONNRESET", 42, { code: "ECONNRESET" }, { message: "LOADING" }]) {
      expect(isTransientRedisError(v)).toBe(false);
    }
  });

  test("recognises the classes of another copy of node-redis by name", () => {
    // What an app bundling its own node-redis would throw: same names, different class objects.
    class ErrorReplyCopy extends Error {}
    Object.defineProperty(ErrorReplyCopy, "name", { value: "ErrorReply" });
    class SimpleErrorCopy extends ErrorReplyCopy {}
    Object.defineProperty(SimpleErrorCopy, "name", { value: "SimpleError" });
    class ClientClosedCopy extends Error {}
    Object.defineProperty(ClientClosedCopy, "name", { value: "ClientClosedError" });
    class SocketClosedCopy extends Error {}
    Object.defineProperty(SocketClosedCopy, "name", { value: "SocketClosedUnexpectedlyError" });
    expect(new SimpleErrorCopy("TRYAGAIN x")).not.toBeInstanceOf(ErrorReply);
    expect(isTransientRedisError(new SimpleErrorCopy("TRYAGAIN x"))).toBe(true);
    expect(isTransientRedisError(new SimpleErrorCopy("ERR x"))).toBe(false);
    expect(isTransientRedisError(new SocketClosedCopy())).toBe(true);
    expect(wasSent(new SocketClosedCopy())).toBe("unknown");
    expect(wasSent(new ClientClosedCopy())).toBe(false);
    expect(wasSent(new SimpleErrorCopy("ERR x"))).toBe(true);
  });
});

describe("wasSent", () => {
  test.each([
    ["ClientClosedError", new ClientClosedError()],
    ["ClientOfflineError (offline queue disabled)", new ClientOfflineError()],
    ["AbortError", new AbortError()],
    ["a full queue", new Error("The queue is full")],
    ["ConnectionTimeoutError", new ConnectionTimeoutError()],
    ["CommandTimeoutDuringMaintenanceError", new CommandTimeoutDuringMaintenanceError(5)],
    ["RootNodesUnavailableError", new RootNodesUnavailableError()],
    ["ReconnectStrategyError", new ReconnectStrategyError(new Error("stop"), sysError("ECONNREFUSED"))],
    ["WatchError", new WatchError()],
    ["ECONNREFUSED", sysError("ECONNREFUSED")],
    ["ENOTFOUND", sysError("ENOTFOUND")],
    ["EAI_AGAIN", sysError("EAI_AGAIN")],
    ["WriteFailedError", new WriteFailedError("SET", "x")],
    ["ReconnectGaveUpError", new ReconnectGaveUpError(3, sysError("ECONNREFUSED"))],
    ["AggregateError of refusals", new AggregateErrorCtor([sysError("ECONNREFUSED"), sysError("ECONNREFUSED")])],
  ])("%s: never sent", (_name, e) => {
    expect(wasSent(e)).toBe(false);
  });

  test.each([
    ["SocketClosedUnexpectedlyError", new SocketClosedUnexpectedlyError()],
    ["SocketTimeoutError", new SocketTimeoutError(5)],
    ["SocketTimeoutDuringMaintenanceError", new SocketTimeoutDuringMaintenanceError(5)],
    ["TimeoutError", new TimeoutError()],
    ["DisconnectsClientError", new DisconnectsClientError()],
    ["ECONNRESET", sysError("ECONNRESET")],
    ["EPIPE", sysError("EPIPE")],
    ["ETIMEDOUT", sysError("ETIMEDOUT")],
    ["EHOSTUNREACH", sysError("EHOSTUNREACH")],
    ["ENETUNREACH", sysError("ENETUNREACH")],
    ["WriteOutcomeUnknownError", new WriteOutcomeUnknownError("SET", "x")],
    ["an unrecognised Error", new Error("something else")],
    ["a non-Error", "boom"],
    ["AggregateError with a reset", new AggregateErrorCtor([sysError("ECONNREFUSED"), sysError("ECONNRESET")])],
    ["an empty AggregateError", new AggregateErrorCtor([])],
  ])("%s: unknown", (_name, e) => {
    expect(wasSent(e)).toBe("unknown");
  });

  test.each([
    ["a reply", new SimpleError("READONLY You can't write against a read only replica.")],
    ["a blob error reply", new BlobError("ERR x")],
    ["a MULTI's replies", new MultiErrorReply([new SimpleError("ERR x")], [0])],
    ["too many redirections", new MaxCommandRedirectionsError(new SimpleError("MOVED 1 h:1"))],
  ])("%s: Redis answered", (_name, e) => {
    expect(wasSent(e)).toBe(true);
  });

  test("a retry budget answers for its last error", () => {
    expect(wasSent(new RetryBudgetExceededError(3, 9, new ClientOfflineError()))).toBe(false);
    expect(wasSent(new RetryBudgetExceededError(3, 9, new SocketClosedUnexpectedlyError()))).toBe("unknown");
    expect(wasSent(new RetryBudgetExceededError(3, 9, new SimpleError("LOADING x")))).toBe(true);
  });

  test("mergeSent: any unknown wins, then an answer, all-false stays false", () => {
    const all: (boolean | "unknown")[] = [false, true, "unknown"];
    const expected: Record<string, boolean | "unknown"> = {
      "false,false": false,
      "false,true": true,
      "true,true": true,
      "false,unknown": "unknown",
      "true,unknown": "unknown",
      "unknown,unknown": "unknown",
    };
    for (const a of all) {
      for (const b of all) {
        const key = [a, b].sort((x, y) => all.indexOf(x) - all.indexOf(y)).join(",");
        expect([a, b, mergeSent(a, b)]).toEqual([a, b, expected[key]]);
      }
    }
  });
});

describe("against a real node-redis client (no Redis server: a port nothing listens on)", () => {
  test("reconnectStrategy's error ends reconnecting; what the client throws is classified", async () => {
    // Reserve a port, then free it: connecting to it is refused at once.
    const server = net.createServer().listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as net.AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));

    const causes: Error[] = [];
    const strategy = reconnectStrategy({ baseMs: 1, capMs: 2, maxRetries: 2, random: () => 0.5 });
    const client = createClient({
      socket: {
        host: "127.0.0.1",
        port,
        reconnectStrategy: (retries, cause) => {
          causes.push(cause);
          return strategy(retries, cause);
        },
      },
    });
    const errors: unknown[] = [];
    client.on("error", (e) => errors.push(e));

    const connectError: unknown = await client.connect().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(connectError).toBeInstanceOf(ReconnectStrategyError);
    const terminal = connectError as ReconnectStrategyError;
    expect(terminal.originalError).toBeInstanceOf(ReconnectGaveUpError);
    expect((terminal.originalError as ReconnectGaveUpError).retries).toBe(2);
    expect((terminal.socketError as { code?: string }).code).toBe("ECONNREFUSED");
    expect(causes.map((c) => (c as { code?: string }).code)).toEqual(["ECONNREFUSED", "ECONNREFUSED", "ECONNREFUSED"]);
    expect(isTransientRedisError(terminal)).toBe(true);
    expect(wasSent(terminal)).toBe(false);
    expect(isTransientRedisError(errors[0])).toBe(true);
    expect(wasSent(errors[0])).toBe(false);

    // The client is closed from then on: a command is refused before being queued.
    const afterwards: unknown = await client.get("k").then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(afterwards).toBeInstanceOf(ClientClosedError);
    expect(isTransientRedisError(afterwards)).toBe(false);
    expect(wasSent(afterwards)).toBe(false);
    client.destroy();
  });
});
