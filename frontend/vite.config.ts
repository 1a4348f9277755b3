import { defineConfig } from "vite";

// The API serves the built page itself; during development Vite forwards API calls to it.
const api = process.env.HUB_API_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
  },
  server: {
    proxy: {
      "/graphql": { target: api, ws: true, changeOrigin: true },
      "/dev": { target: api, changeOrigin: true },
    },
  },
  preview: {
    proxy: {
      "/graphql": { target: api, ws: true, changeOrigin: true },
      "/dev": { target: api, changeOrigin: true },
    },
  },
});
