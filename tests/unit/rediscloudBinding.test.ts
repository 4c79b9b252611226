// Unit tests of the Redis Cloud binding (sdk/rediscloud) and of the schema checker that validates it.
//
// (a) checkInputsAgainstSchema against the real provider schema (skipped with a logged reason when the
//     schema file is absent, except on CI where its absence is a failure), plus an inline mini-schema so
//     the checker's logic is covered everywhere;
// (b) the binding under Pulumi mocks: tokens, inputs, secrets, plugin options, required arguments;
// (c) SubscriptionPeering against the full schema (reference/rediscloud/schema-v1.3.5-full.json) and the
//     provider's check-time validation lists.

import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import * as rediscloud from "@rediscloud/pulumi-rediscloud";
import {
  checkInputsAgainstSchema,
  checkInputsAgainstValidation,
  FULL_SCHEMA_RELATIVE_PATH,
  loadSchema,
  loadValidation,
  ProviderSchema,
} from "./rediscloudSchema";

const SUBSCRIPTION = "rediscloud:index/subscription:Subscription";
const DATABASE = "rediscloud:index/subscriptionDatabase:SubscriptionDatabase";
const PEERING = "rediscloud:index/subscriptionPeering:SubscriptionPeering";
const PLUGIN_URL = "github://api.github.com/RedisLabs/pulumi-rediscloud";

// ---------------------------------------------------------------------------------------------------
// Mocks: record every resource registration and invoke; echo inputs back as state, plus an endpoint.

const registered: pulumi.runtime.MockResourceArgs[] = [];
const invoked: pulumi.runtime.MockCallArgs[] = [];

void pulumi.runtime.setMocks(
  {
    newResource: (args: pulumi.runtime.MockResourceArgs): pulumi.runtime.MockResourceResult => {
      registered.push(args);
      const computed =
        args.type === PEERING
          ? { awsPeeringId: "pcx-0123456789abcdef0", status: "pending-acceptance" }
          : { publicEndpoint: "redis-123.example.cloud:12345" };
      return { id: args.name + "_id", state: { ...(args.inputs as Record<string, unknown>), ...computed } };
    },
    call: (args: pulumi.runtime.MockCallArgs): pulumi.runtime.MockCallResult => {
      invoked.push(args);
      return { id: "pm-42", cardType: "Visa", lastFourNumbers: "4242" };
    },
  },
  "project",
  "stack",
  false,
);

/** Resolves an Output's value (mocks run in non-preview mode, so every value is known). */
function valueOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise<T>((resolve) => output.apply((v) => resolve(v)));
}

/** The inputs the mock monitor received for the resource of that type and name. */
function inputsOf(type: string, name: string): Record<string, unknown> {
  const found = registered.filter((r) => r.type === type && r.name === name);
  expect(found).toHaveLength(1);
  return found[0].inputs as Record<string, unknown>;
}

/** The wire form of a secret as the mock monitor receives it. */
function secretEnvelope(value: unknown): Record<string, unknown> {
  return { [pulumi.runtime.specialSigKey]: pulumi.runtime.specialSecretSig, value };
}

/**
 * Captures the options a resource's constructor finally hands to pulumi.CustomResource: a (legacy,
 * in-process) resource transformation sees them after the binding has merged its defaults in.
 */
function optionsCapture(): { opts: pulumi.CustomResourceOptions; captured: () => pulumi.CustomResourceOptions } {
  let seen: pulumi.CustomResourceOptions | undefined;
  return {
    opts: {
      transformations: [
        (args: pulumi.ResourceTransformationArgs): undefined => {
          seen = args.opts;
          return undefined;
        },
      ],
    },
    captured: () => {
      if (!seen) throw new Error("transformation did not run");
      return seen;
    },
  };
}

// Well-formed arguments used throughout.
const subscriptionArgs: rediscloud.SubscriptionArgs = {
  name: "redis-stack",
  paymentMethod: "credit-card",
  paymentMethodId: "pm-42",
  memoryStorage: "ram",
  cloudProvider: {
    provider: "AWS",
    cloudAccountId: "1",
    regions: [
      {
        region: "eu-west-1",
        networkingDeploymentCidr: "10.0.0.0/24",
        multipleAvailabilityZones: true,
        preferredAvailabilityZones: ["euw1-az1", "euw1-az2", "euw1-az3"],
      },
    ],
  },
  creationPlan: {
    memoryLimitInGb: 1,
    quantity: 1,
    replication: true,
    throughputMeasurementBy: "operations-per-second",
    throughputMeasurementValue: 10000,
    modules: ["RedisJSON"],
  },
  allowlist: { securityGroupIds: ["sg-123"], cidrs: ["10.1.0.0/16"] },
};

const databaseInputs = {
  name: "cache",
  subscriptionId: "sub_id",
  protocol: "redis",
  memoryLimitInGb: 0.5,
  throughputMeasurementBy: "operations-per-second",
  throughputMeasurementValue: 1000,
  dataPersistence: "aof-every-1-second",
  dataEviction: "allkeys-lru",
  replication: true,
  enableTls: false,
  supportOssClusterApi: false,
  averageItemSizeInBytes: 1000,
  port: 12000,
  password: "s3cret-pass",
  sourceIps: ["10.0.0.0/8"],
  alerts: [{ name: "dataset-size", value: 80 }],
  modules: [{ name: "RedisJSON" }],
  remoteBackup: { interval: "every-6-hours", storageType: "aws-s3", storagePath: "s3://bucket/redis" },
};

// ---------------------------------------------------------------------------------------------------
// (a) The checker against the real schema

const schema = loadSchema();

describe("checkInputsAgainstSchema (real schema v1.3.5)", () => {
  const real = (): ProviderSchema => schema;

  test("finds no problem in correct inputs", () => {
    const subscriptionWire = JSON.parse(JSON.stringify(subscriptionArgs)) as Record<string, unknown>;
    expect(checkInputsAgainstSchema(real(), SUBSCRIPTION, subscriptionWire)).toEqual([]);
    expect(checkInputsAgainstSchema(real(), DATABASE, databaseInputs)).toEqual([]);
    // A secret envelope and an unknown (undefined) are accepted as such.
    expect(
      checkInputsAgainstSchema(real(), DATABASE, { ...databaseInputs, password: secretEnvelope("x"), port: undefined }),
    ).toEqual([]);
  });

  test("reports an unknown input", () => {
    const problems = checkInputsAgainstSchema(real(), DATABASE, { ...databaseInputs, memoryLimitInGB: 1 });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(`input "memoryLimitInGB"`);
    expect(problems[0]).toContain("unknown input");
  });

  test("reports a value of the wrong type", () => {
    const problems = checkInputsAgainstSchema(real(), DATABASE, {
      ...databaseInputs,
      replication: "yes",
      port: "12000",
    });
    expect(problems).toHaveLength(2);
    expect(problems.join("\n")).toMatch(/input "replication": expected boolean, got string "yes"/);
    expect(problems.join("\n")).toMatch(/input "port": expected integer/);
  });

  test("reports a non-integer for an integer (and accepts a fraction for a number)", () => {
    const problems = checkInputsAgainstSchema(real(), DATABASE, {
      ...databaseInputs,
      throughputMeasurementValue: 1000.5,
      memoryLimitInGb: 0.25,
    });
    expect(problems).toEqual([
      expect.stringContaining(
        `input "throughputMeasurementValue": expected integer (a whole number), got number 1000.5`,
      ),
    ]);
  });

  test("reports missing required inputs", () => {
    const { memoryLimitInGb: _m, subscriptionId: _s, ...rest } = databaseInputs;
    const problems = checkInputsAgainstSchema(real(), DATABASE, rest);
    expect(problems).toHaveLength(2);
    expect(problems.join("\n")).toMatch(/input "memoryLimitInGb": missing required input/);
    expect(problems.join("\n")).toMatch(/input "subscriptionId": missing required input/);
    // Present but unknown (undefined) is not missing.
    expect(
      checkInputsAgainstSchema(real(), DATABASE, { ...rest, memoryLimitInGb: undefined, subscriptionId: undefined }),
    ).toEqual([]);
  });

  test("recurses into nested objects and array items", () => {
    const problems = checkInputsAgainstSchema(real(), SUBSCRIPTION, {
      cloudProvider: {
        provider: "AWS",
        regions: [{ region: "eu-west-1", multipleAvailabilityZones: "true", networks: [{ networkingSubnetId: 7 }] }],
      },
      creationPlan: {
        memoryLimitInGb: 1,
        quantity: 1.5,
        replication: true,
        throughputMeasurementBy: "operations-per-second",
        throughputMeasurementValue: 1,
        colour: "red",
      },
      allowlist: { cidrs: ["10.0.0.0/8", 10] },
    });
    const text = problems.join("\n");
    expect(text).toMatch(/property "cloudProvider\.regions\[0\]\.multipleAvailabilityZones": expected boolean/);
    expect(text).toMatch(/property "cloudProvider\.regions\[0\]\.networkingDeploymentCidr": missing required property/);
    expect(text).toMatch(
      /property "cloudProvider\.regions\[0\]\.networks\[0\]\.networkingSubnetId": expected string, got number 7/,
    );
    expect(text).toMatch(/property "creationPlan\.quantity": expected integer/);
    expect(text).toMatch(/property "creationPlan\.colour": unknown property/);
    expect(text).toMatch(/property "allowlist\.cidrs\[1\]": expected string/);
    expect(text).toMatch(/property "allowlist\.securityGroupIds": missing required property/);
    expect(problems).toHaveLength(7);
    // A nested object where an array is expected, and a scalar where an object is expected.
    const shape = checkInputsAgainstSchema(real(), DATABASE, {
      ...databaseInputs,
      alerts: { name: "latency", value: 1 },
      remoteBackup: "daily",
    });
    expect(shape.join("\n")).toMatch(/input "alerts": expected array, got object/);
    expect(shape.join("\n")).toMatch(
      /input "remoteBackup": expected object rediscloud:index\/SubscriptionDatabaseRemoteBackup/,
    );
  });

  test("rejects a token the schema does not know, and checks the provider's config inputs", () => {
    expect(checkInputsAgainstSchema(real(), "rediscloud:index/cloudAccount:CloudAccount", {})).toEqual([
      expect.stringContaining("unknown resource token"),
    ]);
    expect(
      checkInputsAgainstSchema(real(), "pulumi:providers:rediscloud", {
        apiKey: secretEnvelope("k"),
        url: "https://api",
      }),
    ).toEqual([]);
    expect(checkInputsAgainstSchema(real(), "pulumi:providers:rediscloud", { apiKey: 1 })).toHaveLength(1);
  });
});

describe("checkInputsAgainstSchema (inline schema)", () => {
  // Independent of the shared file: covers maps, enums, oneOf and unresolvable $refs.
  const mini: ProviderSchema = {
    name: "mini",
    resources: {
      "mini:index/thing:Thing": {
        inputProperties: {
          tags: { type: "object", additionalProperties: { type: "string" } },
          size: { $ref: "#/types/mini:index/Size:Size" },
          port: { oneOf: [{ type: "integer" }, { type: "string" }] },
          broken: { $ref: "#/types/mini:index/Nope:Nope" },
          anything: { $ref: "pulumi.json#/Any" },
        },
        requiredInputs: ["size"],
      },
    },
    types: { "mini:index/Size:Size": { type: "string", enum: [{ value: "small" }, { value: "large" }] } },
  };
  const token = "mini:index/thing:Thing";

  test("accepts conforming values", () => {
    expect(
      checkInputsAgainstSchema(mini, token, { tags: { a: "b" }, size: "small", port: 80, anything: { x: [1] } }),
    ).toEqual([]);
    expect(checkInputsAgainstSchema(mini, token, { size: "large", port: "http" })).toEqual([]);
  });

  test("reports map values, enum members, oneOf misses and dangling $refs", () => {
    const problems = checkInputsAgainstSchema(mini, token, { tags: { a: 1 }, size: "medium", port: true, broken: 1 });
    const text = problems.join("\n");
    expect(text).toMatch(/property "tags\["a"\]": expected string/);
    expect(text).toMatch(/input "size": expected one of "small", "large"/);
    expect(text).toMatch(/input "port": matches none of the oneOf alternatives/);
    expect(text).toMatch(/input "broken": schema \$ref .* does not resolve/);
    expect(problems).toHaveLength(4);
    expect(checkInputsAgainstSchema(mini, token, {})).toEqual([`${token}: input "size": missing required input`]);
  });
});

// ---------------------------------------------------------------------------------------------------
// (b) The binding under mocks

describe("Redis Cloud binding", () => {
  test("registers a Subscription and a SubscriptionDatabase with the expected tokens and inputs", async () => {
    const sub = new rediscloud.Subscription("sub", subscriptionArgs);
    const db = new rediscloud.SubscriptionDatabase("db", {
      ...databaseInputs,
      subscriptionId: sub.id,
    });

    expect(await valueOf(sub.id)).toBe("sub_id");
    expect(await valueOf(db.id)).toBe("db_id");
    expect(await valueOf(db.publicEndpoint)).toBe("redis-123.example.cloud:12345");
    expect(await valueOf(db.throughputMeasurementValue)).toBe(1000);
    expect(await valueOf(sub.cloudProvider)).toEqual(subscriptionArgs.cloudProvider);

    expect(
      registered
        .filter((r) => r.name === "sub" || r.name === "db")
        .map((r) => r.type)
        .sort(),
    ).toEqual([SUBSCRIPTION, DATABASE]);
    expect(registered.every((r) => r.custom !== false)).toBe(true);

    expect(inputsOf(SUBSCRIPTION, "sub")).toEqual(subscriptionArgs);
    const dbInputs = inputsOf(DATABASE, "db");
    // The subscription id flows in; the password arrives as a secret.
    expect(dbInputs).toEqual({ ...databaseInputs, subscriptionId: "sub_id", password: secretEnvelope("s3cret-pass") });
    // Output-only properties are not sent as inputs.
    expect(Object.keys(dbInputs)).not.toEqual(expect.arrayContaining(["publicEndpoint"]));

    // What the binding registered is what the provider schema accepts.
    if (schema) {
      expect(checkInputsAgainstSchema(schema, SUBSCRIPTION, inputsOf(SUBSCRIPTION, "sub"))).toEqual([]);
      expect(checkInputsAgainstSchema(schema, DATABASE, dbInputs)).toEqual([]);
    }
  });

  test("the database password output is secret; endpoints are not", async () => {
    const db = new rediscloud.SubscriptionDatabase("db-secret", {
      subscriptionId: "sub_id",
      memoryLimitInGb: 1,
      throughputMeasurementBy: "operations-per-second",
      throughputMeasurementValue: 1000,
      password: "hunter2",
    });
    expect(await pulumi.isSecret(db.password)).toBe(true);
    expect(await pulumi.isSecret(db.publicEndpoint)).toBe(false);
    expect(await valueOf(db.password)).toBe("hunter2");
  });

  test("resource options carry the plugin version, download URL and secret outputs", async () => {
    const dbCapture = optionsCapture();
    new rediscloud.SubscriptionDatabase(
      "db-opts",
      {
        subscriptionId: "sub_id",
        memoryLimitInGb: 1,
        throughputMeasurementBy: "number-of-shards",
        throughputMeasurementValue: 1,
      },
      dbCapture.opts,
    );
    expect(dbCapture.captured()).toEqual(
      expect.objectContaining({
        version: "1.3.5",
        pluginDownloadURL: PLUGIN_URL,
        additionalSecretOutputs: ["password"],
      }),
    );

    const subCapture = optionsCapture();
    new rediscloud.Subscription("sub-opts", { cloudProvider: { regions: [] } }, { ...subCapture.opts, protect: true });
    expect(subCapture.captured()).toEqual(
      expect.objectContaining({ version: "1.3.5", pluginDownloadURL: PLUGIN_URL, protect: true }),
    );

    // The helper the resources use: defaults under the caller's options, caller wins.
    expect(rediscloud.withPluginDefaults()).toEqual({ version: "1.3.5", pluginDownloadURL: PLUGIN_URL });
    expect(rediscloud.withPluginDefaults({ version: "1.4.0", ignoreChanges: ["name"] })).toEqual({
      version: "1.4.0",
      pluginDownloadURL: PLUGIN_URL,
      ignoreChanges: ["name"],
    });
    expect(rediscloud.withInvokeDefaults({ async: true })).toEqual({
      version: "1.3.5",
      pluginDownloadURL: PLUGIN_URL,
      async: true,
    });
    expect(rediscloud.version).toBe("1.3.5");
    expect(rediscloud.pluginDownloadURL).toBe(PLUGIN_URL);
    // Keep the binding's constants in step with its package.json `pulumi` block.
    const pkgFile = require.resolve("@rediscloud/pulumi-rediscloud/package.json");
    const pkg = JSON.parse(fs.readFileSync(pkgFile, "utf8")) as { pulumi: Record<string, unknown> };
    expect(pkg.pulumi).toEqual({
      resource: true,
      name: rediscloud.packageName,
      version: rediscloud.version,
      server: rediscloud.pluginDownloadURL,
    });
  });

  test("missing required properties throw like generated SDKs", () => {
    expect(() => new rediscloud.Subscription("sub-bad", {} as rediscloud.SubscriptionArgs)).toThrow(
      "Missing required property 'cloudProvider'",
    );
    const dbArgs: rediscloud.SubscriptionDatabaseArgs = {
      subscriptionId: "sub_id",
      memoryLimitInGb: 1,
      throughputMeasurementBy: "operations-per-second",
      throughputMeasurementValue: 1000,
    };
    for (const key of [
      "memoryLimitInGb",
      "subscriptionId",
      "throughputMeasurementBy",
      "throughputMeasurementValue",
    ] as const) {
      const { [key]: _dropped, ...rest } = dbArgs;
      expect(
        () => new rediscloud.SubscriptionDatabase(`db-bad-${key}`, rest as rediscloud.SubscriptionDatabaseArgs),
      ).toThrow(`Missing required property '${key}'`);
    }
  });

  test("get() looks a resource up by id; isInstance recognises the classes", async () => {
    const existing = rediscloud.SubscriptionDatabase.get("db-existing", "123/456");
    // A read keeps the id it was asked for.
    expect(await valueOf(existing.id)).toBe("123/456");
    const read = registered.find((r) => r.name === "db-existing");
    expect(read).toEqual(expect.objectContaining({ type: DATABASE, id: "123/456" }));

    expect(rediscloud.SubscriptionDatabase.isInstance(existing)).toBe(true);
    expect(rediscloud.Subscription.isInstance(existing)).toBe(false);
    expect(rediscloud.Subscription.isInstance(undefined)).toBe(false);
    expect(rediscloud.tokens).toEqual({
      provider: "pulumi:providers:rediscloud",
      subscription: SUBSCRIPTION,
      subscriptionDatabase: DATABASE,
      subscriptionPeering: PEERING,
      getPaymentMethod: "rediscloud:index/getPaymentMethod:getPaymentMethod",
    });
  });

  test("Provider registers pulumi:providers:rediscloud with secret credentials", async () => {
    const provider = new rediscloud.Provider("rc", { apiKey: "key", secretKey: "secret", url: "https://api.example" });
    expect(await valueOf(provider.id)).toBe("rc_id");
    expect(rediscloud.Provider.isInstance(provider)).toBe(true);
    const inputs = inputsOf("pulumi:providers:rediscloud", "rc");
    expect(inputs).toEqual({
      apiKey: secretEnvelope("key"),
      secretKey: secretEnvelope("secret"),
      url: "https://api.example",
    });
    expect(await pulumi.isSecret(provider.apiKey)).toBe(true);
    expect(await pulumi.isSecret(provider.secretKey)).toBe(true);
    if (schema) {
      expect(checkInputsAgainstSchema(schema, "pulumi:providers:rediscloud", inputs)).toEqual([]);
    }
  });

  test("getPaymentMethod / getPaymentMethodOutput invoke the data source", async () => {
    const result = await rediscloud.getPaymentMethod({ cardType: "Visa" });
    expect(result.id).toBe("pm-42");
    const out = rediscloud.getPaymentMethodOutput({ cardType: pulumi.output("Visa"), lastFourNumbers: "4242" });
    expect(await valueOf(out.id)).toBe("pm-42");

    const calls = invoked.filter((c) => c.token === "rediscloud:index/getPaymentMethod:getPaymentMethod");
    expect(calls.map((c) => c.inputs as unknown)).toEqual([
      { cardType: "Visa" },
      { cardType: "Visa", lastFourNumbers: "4242" },
    ]);
  });
});

// ---------------------------------------------------------------------------------------------------
// (c) SubscriptionPeering, against the provider's full schema (the subset file predates the peering)

describe("SubscriptionPeering binding (full schema v1.3.5)", () => {
  const full = loadSchema(FULL_SCHEMA_RELATIVE_PATH);
  const spec = full.resources[PEERING];
  const awsArgs = {
    subscriptionId: "1234567",
    providerName: "AWS",
    region: "eu-west-1",
    awsAccountId: "123456789012",
    vpcId: "vpc-01234567890",
    vpcCidrs: ["10.60.0.0/16", "10.61.0.0/16"],
  } satisfies rediscloud.SubscriptionPeeringArgs;

  test("the full schema is a superset of the subset file: the resources the stack started with are identical", () => {
    for (const [token, resource] of Object.entries(schema.resources)) expect(full.resources[token]).toEqual(resource);
    expect(spec).toBeDefined();
    expect(spec.requiredInputs).toEqual(["subscriptionId"]);
  });

  test("registers the token with every schema input under its schema name, and nothing else", async () => {
    const everyInput: Required<rediscloud.SubscriptionPeeringArgs> = {
      ...awsArgs,
      vpcCidr: "10.60.0.0/16",
      gcpProjectId: "project",
      gcpNetworkName: "network",
    };
    const peering = new rediscloud.SubscriptionPeering("peering-all", everyInput);
    expect(await valueOf(peering.id)).toBe("peering-all_id");
    const sent = inputsOf(PEERING, "peering-all");
    expect(Object.keys(sent).sort()).toEqual(Object.keys(spec.inputProperties ?? {}).sort());
    // Type-correct against the schema (the provider's own ExactlyOneOf on vpcCidr/vpcCidrs is not a type).
    expect(checkInputsAgainstSchema(full, PEERING, sent)).toEqual([]);
  });

  test("every schema property is an Output of the resource; awsPeeringId (what AWS accepts) comes from the provider", async () => {
    const peering = new rediscloud.SubscriptionPeering("peering-aws", awsArgs);
    const props = peering as unknown as Record<string, unknown>;
    for (const key of Object.keys(spec.properties ?? {}))
      expect({ key, output: pulumi.Output.isInstance(props[key]) }).toEqual({ key, output: true });
    expect(await valueOf(peering.awsPeeringId)).toBe("pcx-0123456789abcdef0");
    expect(await valueOf(peering.status)).toBe("pending-acceptance");
    expect(await valueOf(peering.vpcCidrs)).toEqual(["10.60.0.0/16", "10.61.0.0/16"]);
    // Output-only properties are not sent as inputs.
    const sent = inputsOf(PEERING, "peering-aws");
    expect(sent).toEqual(awsArgs);
    expect(checkInputsAgainstSchema(full, PEERING, sent)).toEqual([]);
    expect(checkInputsAgainstValidation(loadValidation(), PEERING, sent)).toEqual([]);
  });

  test("the provider's check-time rules: a numeric subscription id, AWS or GCP, CIDRs", () => {
    expect(
      checkInputsAgainstValidation(loadValidation(), PEERING, {
        ...awsArgs,
        subscriptionId: "sub_id",
        providerName: "Azure",
        vpcCidrs: ["10.60.0.0/33"],
      }),
    ).toEqual([
      'subscriptionId: "sub_id" does not match ^\\d+$',
      'providerName: "Azure" is not one of AWS, GCP',
      'vpcCidrs[]: "10.60.0.0/33" is not a CIDR',
    ]);
  });

  test("options: plugin defaults, and every input replaces the peering (schema willReplaceOnChanges)", () => {
    const capture = optionsCapture();
    new rediscloud.SubscriptionPeering("peering-opts", awsArgs, capture.opts);
    const replacing = Object.entries(spec.inputProperties ?? {})
      .filter(([, p]) => p.willReplaceOnChanges === true)
      .map(([k]) => k)
      .sort();
    expect(capture.captured()).toEqual(
      expect.objectContaining({ version: "1.3.5", pluginDownloadURL: PLUGIN_URL, replaceOnChanges: replacing }),
    );
  });

  test("subscriptionId is required; get() reads by id; isInstance tells the classes apart", async () => {
    expect(() => new rediscloud.SubscriptionPeering("peering-bad", {} as rediscloud.SubscriptionPeeringArgs)).toThrow(
      "Missing required property 'subscriptionId'",
    );
    const existing = rediscloud.SubscriptionPeering.get("peering-existing", "1234567/42");
    expect(await valueOf(existing.id)).toBe("1234567/42");
    expect(registered.find((r) => r.name === "peering-existing")).toEqual(
      expect.objectContaining({ type: PEERING, id: "1234567/42" }),
    );
    expect(rediscloud.SubscriptionPeering.isInstance(existing)).toBe(true);
    expect(rediscloud.Subscription.isInstance(existing)).toBe(false);
    expect(rediscloud.tokens.subscriptionPeering).toBe(PEERING);
  });
});
