import "./style.css";
import { App } from "./app";

declare global {
  interface Window {
    __hub?: {
      app: App;
      sigma: App["view"]["sigma"];
      graph: App["model"]["graph"];
    };
  }
}

function fatal(message: string): void {
  // Never leave a blank page: say what broke where the graph would be.
  const stage = document.querySelector<HTMLElement>('[data-testid="empty-state"]');
  if (stage) {
    stage.hidden = false;
    stage.innerHTML = "";
    const title = document.createElement("h2");
    title.textContent = "The graph explorer could not start";
    const p = document.createElement("p");
    p.dataset.testid = "fatal-error";
    p.textContent = message;
    stage.append(title, p);
  }
}

try {
  const app = new App();
  // Exposed so that end-to-end tests can read screen positions from the renderer.
  window.__hub = { app, sigma: app.view.sigma, graph: app.model.graph };
  void app.start().catch((e: unknown) => fatal(String((e as Error)?.message ?? e)));
} catch (e) {
  fatal(
    `${(e as Error).message}. The canvas needs WebGL; check that hardware acceleration or a software renderer is enabled.`,
  );
}
