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
    // Two pages: the graph explorer and the data access page (requests, decisions, evidence).
    rollupOptions: { input: { main: "index.html", access: "access.html" } },
  },
  server: { proxy },
  preview: { proxy },
});
