// The Neo4j GraphQL Library over the hub's graph, for bench/graphql_library.py: type definitions for the
// benchmarked classes only, each with an @authorization filter that keeps the nodes whose label id is
// among the caller's (the `labels` claim of an HS256 token, the hub's guard rule for the same caller).
// Settings from the environment: NEO4J_URI, NEO4J_USER, NEO4J_PASSWORD, NEO4J_DATABASE, PORT,
// JWT_SECRET, FULLTEXT_INDEX and FULLTEXT_FIELDS (the hub's name index and the properties it covers).
import { ApolloServer } from "@apollo/server";
import { startStandaloneServer } from "@apollo/server/standalone";
import { Neo4jGraphQL } from "@neo4j/graphql";
import neo4j from "neo4j-driver";
import { createHmac, timingSafeEqual } from "node:crypto";

const env = process.env;
const guarded = '@authorization(filter: [{ where: { node: { _label: { in: "$jwt.labels" } } } }])';
const ids = "mrid: ID!\n  name: String\n  _label: Int";
const nameFields = env.FULLTEXT_FIELDS.split(",");

const typeDefs = `#graphql
type JWT @jwt {
  labels: [Int!]!
}

type ACLineSegment @node(labels: ["ACLineSegment", "Entity"]) ${guarded} {
  ${ids}
  length: Float
  r: Float
  x: Float
  bch: Float
  baseVoltage: BaseVoltage @relationship(type: "BASE_VOLTAGE", direction: OUT)
}

type BaseVoltage @node(labels: ["BaseVoltage", "Entity"]) ${guarded} {
  ${ids}
  nominalVoltage: Float
}

type Substation @node(labels: ["Substation", "Entity"]) ${guarded} {
  ${ids}
  voltageLevels: [VoltageLevel!]! @relationship(type: "SUBSTATION", direction: IN)
}

type VoltageLevel @node(labels: ["VoltageLevel", "Entity"]) ${guarded} {
  ${ids}
  baseVoltage: BaseVoltage @relationship(type: "BASE_VOLTAGE", direction: OUT)
}

type Entity
  @node(labels: ["Entity"])
  @fulltext(indexes: [{ indexName: "${env.FULLTEXT_INDEX}", queryName: "searchNames", fields: ${JSON.stringify(nameFields)} }])
  ${guarded} {
  mrid: ID!
  _label: Int
  _class: String
  ${nameFields.filter((f) => f !== "name").map((f) => `${f}: String`).join("\n  ")}
  name: String
}
`;

const driver = neo4j.driver(env.NEO4J_URI, neo4j.auth.basic(env.NEO4J_USER, env.NEO4J_PASSWORD));
const library = new Neo4jGraphQL({ typeDefs, driver });

// The token's claims once its HS256 signature checks out. Label ids are 64-bit integers, beyond what a
// JavaScript number holds exactly, so the token carries them as strings and they reach Cypher as Neo4j
// integers (the library passes a decoded token in the context's `jwt` field through to the query).
function claims(header) {
  const [head, body, signature] = (header || "").replace(/^Bearer /, "").split(".");
  const expected = createHmac("sha256", env.JWT_SECRET).update(`${head}.${body}`).digest();
  const given = Buffer.from(signature || "", "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { labels: [] };
  const payload = JSON.parse(Buffer.from(body, "base64url").toString());
  return { ...payload, labels: payload.labels.map((id) => neo4j.int(id)) };
}

const server = new ApolloServer({ schema: await library.getSchema() });
const { url } = await startStandaloneServer(server, {
  listen: { host: "127.0.0.1", port: Number(env.PORT) },
  context: async ({ req }) => ({
    jwt: claims(req.headers.authorization),
    sessionConfig: { database: env.NEO4J_DATABASE || "neo4j" },
  }),
});
console.log(`ready ${url}`);
