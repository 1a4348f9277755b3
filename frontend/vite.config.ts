import { defineConfig } from "vite";

// The API serves the built page itself; during development Vite forwards API calls to it.
const api = process.env.HUB_API_URL ?? "http://127.0.0.1:8000";
const proxy = {
  "/graphql": { target: api, ws: true, changeOrigin: true },
  "/dev": { target: api, changeOrigin: true },
  "/api": { target: api, changeOrigin: true },
};

export default defineConfig({
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
    // Three pages: the graph explorer, the data access page (requests, decisions, evidence) and the data
    // products page (catalogue, product pages with quality and flags).
    rollupOptions: { input: { main: "index.html", access: "access.html", portal: "portal.html" } },
  },
  server: { proxy },
  preview: { proxy },
});
