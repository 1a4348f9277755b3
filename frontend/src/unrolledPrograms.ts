// Sigma's drawing programs without instancing, for software WebGL.
//
// Sigma draws every object as an instance of one small shape (a triangle around a disc, a rectangle and a
// triangle for an arrow): one draw call, the shape's corners given once for all, each object's own data
// once per object. With a GPU that is the cheap way. SwiftShader, the software WebGL the page gets where
// there is no GPU, pays a large cost per instance instead: on the 2-core test machine 20,000 ringed
// objects took some 600 ms and 20,000 arrows some 900 ms to draw as instances. So the page draws with the
// same programs unrolled: every corner of every object's shape written out as a vertex of its own (the
// object's data, then the corner's), one plain draw call; the same 20,000 took some 100 ms and 60 ms
// (frontend/README.md, bench/results/page-render-round5.md). The shaders are sigma's own, untouched, so
// the picture, picking included, is the same; only the vertex buffers grow (by the corners per shape).

/** What unrolling uses of a sigma program (rendering/program.ts), which sigma's public types hide. */
interface ProgramDefinition {
  ATTRIBUTES: unknown[];
  CONSTANT_ATTRIBUTES?: unknown[];
  CONSTANT_DATA?: number[][];
}
interface DrawingProgram {
  ATTRIBUTES_ITEMS_COUNT: number;
  array: Float32Array;
  getDefinition(): ProgramDefinition;
  processVisibleItem(index: number, offset: number, ...data: unknown[]): void;
}
// A mixin's base must be constructible with any arguments (TypeScript's rule for class mixins).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type DrawingProgramClass = abstract new (...args: any[]) => DrawingProgram;

/** Where an object's items go in an unrolled vertex: its own (as the program writes them for an instance),
 * then the corner's (the program's constant data for that vertex). */
interface Layout {
  own: number;
  corners: Float32Array[];
  scratch: Float32Array;
}

/** The program class `Base` (a sigma node or edge program, not a compound one), drawn without instancing.
 * A program that does not use instancing is returned as it draws already. */
export function unrolled<C>(program: C): C {
  const Base = program as unknown as DrawingProgramClass;
  abstract class Unrolled extends Base {
    declare private layout: Layout | null | undefined;

    getDefinition(): ProgramDefinition {
      const def = super.getDefinition();
      if (!def.CONSTANT_ATTRIBUTES) return def;
      // Sigma reads a program as instanced when its definition has these keys at all.
      const plain: ProgramDefinition = { ...def, ATTRIBUTES: [...def.ATTRIBUTES, ...def.CONSTANT_ATTRIBUTES] };
      delete plain.CONSTANT_ATTRIBUTES;
      delete plain.CONSTANT_DATA;
      return plain;
    }

    private unrolling(): Layout | null {
      const def = super.getDefinition();
      if (!def.CONSTANT_ATTRIBUTES || !def.CONSTANT_DATA) return null;
      const corners = def.CONSTANT_DATA.map((v) => Float32Array.from(v));
      const own = this.ATTRIBUTES_ITEMS_COUNT - (corners[0]?.length ?? 0);
      return { own, corners, scratch: new Float32Array(own) };
    }

    processVisibleItem(index: number, offset: number, ...data: unknown[]): void {
      if (this.layout === undefined) this.layout = this.unrolling();
      const layout = this.layout;
      if (layout === null) {
        super.processVisibleItem(index, offset, ...data);
        return;
      }
      // The program writes one instance's items; they are copied into every corner's vertex.
      const array = this.array;
      this.array = layout.scratch;
      try {
        super.processVisibleItem(index, 0, ...data);
      } finally {
        this.array = array;
      }
      const stride = this.ATTRIBUTES_ITEMS_COUNT;
      layout.corners.forEach((corner, v) => {
        const at = offset + v * stride;
        array.set(layout.scratch, at);
        array.set(corner, at + layout.own);
      });
    }
  }
  return Unrolled as unknown as C;
}
