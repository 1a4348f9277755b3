// The operations the page sends and the shapes of their answers, all generated from the named operations
// in graphql/operations/ (see codegen.ts): this module only names the parts the page works with.
// Only the generic part of the schema is used, so the page works for any class the ontology adds; the one
// exception is the substation view (SubstationDiagram), which is about CIM's substations by nature.

import {
  ChangesDocument,
  ClassPageDocument,
  CountsDocument,
  DependenciesDocument,
  MeasurementHistoryDocument,
  MeDocument,
  NeighbourhoodDocument,
  ObjectDetailDocument,
  ObjectHistoryDocument,
  ObjectsPageDocument,
  OntologyClassesDocument,
  PlacesAndRelationsDocument,
  RelationsAmongDocument,
  SearchDocument,
  ShortestPathDocument,
  SubgraphViewFragmentDoc,
  SubstationDiagramDocument,
  TypedDocumentString,
} from "./generated/operations";
import type * as G from "./generated/operations";

export { TypedDocumentString };

export type Domain = G.Domain;
export type PathVia = G.PathVia;
export type Caller = G.MeQuery["me"];
export type Subgraph = G.SubgraphViewFragment;
export type GraphNode = Subgraph["nodes"][number];
export type GraphEdge = Subgraph["edges"][number];
export type Geometry = NonNullable<GraphNode["geometry"]>;
export type SearchHit = G.SearchQuery["search"][number];
export type ObjectDetail = NonNullable<G.ObjectDetailQuery["object"]>;
export type ObjectVersion = G.ObjectHistoryQuery["history"][number];
export type AttributeValue = ObjectDetail["attributes"][number];
export type DependencyReport = G.DependenciesQuery["dependencies"];
export type DependencyDirection = G.DependencyDirection;
export type MeasurementSeries = G.MeasurementHistoryQuery["measurementHistory"][number];
export type ClassCount = G.CountsQuery["counts"][number];
export type OntologyClass = G.OntologyClassesQuery["ontologyClasses"][number];
export type Change = G.ChangesSubscription["changes"];
export type ObjectsPage = G.ObjectsPageQuery;
export type ClassPage = G.ClassPageQuery;
/** An object as a class load first reads it: without its place and level (see Place). */
export type ClassObject = ClassPage["objects"]["nodes"][number];
/** Where an object is and its network level, read after it is drawn. */
export type Place = Pick<GraphNode, "mrid" | "geometry" | "level">;
export type DiagramSubstation = G.DiagramSubstationFragment;
export type SubstationDiagramAnswer = G.SubstationDiagramQuery["object"];

export const ME = MeDocument;
export const ONTOLOGY_CLASSES = OntologyClassesDocument;
export const COUNTS = CountsDocument;
export const SEARCH = SearchDocument;
export const OBJECT = ObjectDetailDocument;
export const OBJECT_HISTORY = ObjectHistoryDocument;
export const NEIGHBOURHOOD = NeighbourhoodDocument;
export const SHORTEST_PATH = ShortestPathDocument;
export const DEPENDENCIES = DependenciesDocument;
export const OBJECTS_PAGE = ObjectsPageDocument;
export const CLASS_PAGE = ClassPageDocument;
export const PLACES_AND_RELATIONS = PlacesAndRelationsDocument;
export const CHANGES = ChangesDocument;
export const SUBSTATION_DIAGRAM = SubstationDiagramDocument;
export const MEASUREMENT_HISTORY = MeasurementHistoryDocument;
export const RELATIONS_AMONG = RelationsAmongDocument;

/** Variables of a batch of neighbourhoods: `m0`, `m1`, ... for the aliases `n0`, `n1`, .... */
export type NeighbourhoodBatchVariables = Record<`m${number}`, string>;

/**
 * One request for the neighbourhoods of many objects at once (aliases n0, n1, ...), each selecting the
 * generated SubgraphView fragment of graphql/operations/Neighbourhood.graphql. Only the number of
 * aliases varies, which no fixed operation can express.
 */
export function batchNeighbourhoods(
  count: number,
): TypedDocumentString<Record<`n${number}`, Subgraph>, NeighbourhoodBatchVariables> {
  const vars = Array.from({ length: count }, (_, i) => `$m${i}: ID!`).join(", ");
  const fields = Array.from(
    { length: count },
    (_, i) => `n${i}: neighbourhood(mrid: $m${i}, depth: 1) { ...SubgraphView }`,
  ).join("\n");
  return new TypedDocumentString(`query NeighbourhoodBatch(${vars}) {\n${fields}\n}\n${SubgraphViewFragmentDoc.toString()}`);
}

/** Variables of a view at a time: `m0`, `m1`, ... for the aliases `n0`, `n1`, ..., and `asOf` (null: now). */
export type ViewAtVariables = Record<string, string | null>;

/**
 * The current view again, as it was at `$asOf` (null: now): for each object on it (aliases n0, n1, ...),
 * its neighbourhood to the given depth (1 where it was expanded, else 0: the object alone), each selecting
 * the generated SubgraphView fragment. The depths are numbers the page chooses, never text.
 */
export function viewAt(depths: number[]): TypedDocumentString<Record<`n${number}`, Subgraph>, ViewAtVariables> {
  const vars = ["$asOf: DateTime", ...depths.map((_, i) => `$m${i}: ID!`)].join(", ");
  const fields = depths
    .map((d, i) => `n${i}: neighbourhood(mrid: $m${i}, depth: ${Math.max(0, Math.min(1, Math.trunc(d)))}, asOf: $asOf) { ...SubgraphView }`)
    .join("\n");
  return new TypedDocumentString(`query ViewAt(${vars}) {\n${fields}\n}\n${SubgraphViewFragmentDoc.toString()}`);
}
