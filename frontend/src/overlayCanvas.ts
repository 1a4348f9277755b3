// A 2D canvas drawn under or over sigma's own: sized to the graph view at the device's pixel ratio and
// cleared before each drawing, so that the map outlines and line geometries stay sharp and aligned.

import type Sigma from "sigma";

/** Resizes ``canvas`` to sigma's view (only when it changed), clears it, and returns the view's size in
 * CSS pixels and the device's pixel ratio; the context is left with the identity transform. */
export function fitAndClear(
  canvas: HTMLCanvasElement,
  ctx: CanvasRenderingContext2D,
  sigma: Sigma,
): { width: number; height: number; ratio: number } {
  const { width, height } = sigma.getDimensions();
  const ratio = window.devicePixelRatio || 1;
  const w = Math.round(width * ratio);
  const h = Math.round(height * ratio);
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
  }
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { width, height, ratio };
}
