// The GraphQL operations the page sends, with the shapes of their answers.
// Only the generic part of the schema is used, so the page works for any class the ontology adds.

export type Domain = "ELECTRICITY" | "GAS";

export interface Point {
  x: number;
  y: number;
}

export interface Caller {
  subject: string;
  org: string | null;
  clearance: string | null;
  roles: string[];
  groups: string[];
  anonymous: boolean;
}

export interface GraphNode {
  mrid: string;
  className: string;
  domain: Domain;
  name: string | null;
  label: string;
  point: Point | null;
}

export interface GraphEdge {
  source: string;
  target: string;
  type: string;
  key: string;
}

export interface Subgraph {
  nodes: GraphNode[];
  edges: GraphEdge[];
}

export interface SearchHit {
  mrid: string;
  className: string;
  domain: Domain;
  name: string | null;
}

export interface AttributeValue {
  key: string;
  qname: string;
  value: unknown;
  unit: string | null;
}

export interface ObjectDetail extends GraphNode {
  producer: string;
  version: number;
  updated: string;
  attributes: AttributeValue[];
}

export interface DependencyReport {
  root: GraphNode | null;
  dependents: GraphNode[];
  capacityMW: number | null;
  subgraph: Subgraph | null;
}

export interface ClassCount {
  className: string;
  count: number;
}

export interface OntologyClass {
  name: string;
  domain: Domain;
  parents: string[];
  abstract: boolean;
}

export interface Change {
  cursor: string;
  mrid: string;
  className: string;
  change: string;
  version: number;
  time: string;
  node: GraphNode | null;
}

const NODE_FIELDS = "mrid className domain name label point { x y }";

export const ME = `query Me { me { subject org clearance roles groups anonymous } }`;

export const ONTOLOGY_CLASSES = `query OntologyClasses { ontologyClasses { name domain parents abstract } }`;

export const COUNTS = `query Counts($domain: Domain) { counts(domain: $domain) { className count } }`;

export const SEARCH = `query Search($text: String!, $first: Int) {
  search(text: $text, first: $first) { mrid className domain name }
}`;

export const OBJECT = `query ObjectDetail($mrid: ID!) {
  object(mrid: $mrid) {
    ${NODE_FIELDS} producer version updated
    attributes { key qname value unit }
  }
}`;

export const NEIGHBOURHOOD = `query Neighbourhood($mrid: ID!, $depth: Int, $types: [String!]) {
  neighbourhood(mrid: $mrid, depth: $depth, types: $types) {
    nodes { ${NODE_FIELDS} }
    edges { source target type key }
  }
}`;

export const SHORTEST_PATH = `query ShortestPath($from: ID!, $to: ID!) {
  shortestPath(from: $from, to: $to) {
    nodes { ${NODE_FIELDS} }
    edges { source target type key }
  }
}`;

export const DEPENDENCIES = `query Dependencies($mrid: ID!) {
  dependencies(mrid: $mrid) {
    root { ${NODE_FIELDS} }
    dependents { ${NODE_FIELDS} }
    capacityMW
    subgraph { nodes { ${NODE_FIELDS} } edges { source target type key } }
  }
}`;

export const OBJECTS_PAGE = `query ObjectsPage($className: String, $domain: Domain, $first: Int, $after: String) {
  objects(className: $className, domain: $domain, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { ${NODE_FIELDS} } }
  }
}`;

export const CHANGES = `subscription Changes($mrids: [ID!], $classNames: [String!], $domain: Domain, $after: String) {
  changes(mrids: $mrids, classNames: $classNames, domain: $domain, after: $after) {
    cursor mrid className change version time
    node { ${NODE_FIELDS} }
  }
}`;

/** Builds one request that fetches the neighbourhoods of many objects at once (aliases n0, n1, ...). */
export function batchNeighbourhoods(count: number): string {
  const vars = Array.from({ length: count }, (_, i) => `$m${i}: ID!`).join(", ");
  const fields = Array.from(
    { length: count },
    (_, i) => `n${i}: neighbourhood(mrid: $m${i}, depth: 1) { nodes { ${NODE_FIELDS} } edges { source target type key } }`,
  ).join("\n");
  return `query NeighbourhoodBatch(${vars}) {\n${fields}\n}`;
}

export interface ObjectsPage {
  objects: {
    totalCount: number;
    pageInfo: { hasNextPage: boolean; endCursor: string | null };
    edges: { node: GraphNode }[];
  };
}
