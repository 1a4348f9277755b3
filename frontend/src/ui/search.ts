// Search box with suggestions: typed text goes to the API's search (names and mRIDs) after a
// short pause; arrow keys and Enter pick a suggestion.

import { clear, debounce, h } from "../dom";
import type { ClassStyles } from "../classStyle";
import type { SearchHit } from "../queries";

export class SearchBox {
  private readonly input: HTMLInputElement;
  private readonly list: HTMLUListElement;
  private hits: SearchHit[] = [];
  private active = -1;
  private seq = 0;

  constructor(
    root: HTMLElement,
    private readonly styles: ClassStyles,
    private readonly search: (text: string) => Promise<SearchHit[]>,
    private readonly choose: (hit: SearchHit) => void,
  ) {
    this.input = root.querySelector("input") as HTMLInputElement;
    this.list = root.querySelector("ul") as HTMLUListElement;
    const run = debounce((text: string) => void this.lookup(text), 200);
    this.input.addEventListener("input", () => run(this.input.value.trim()));
    this.input.addEventListener("keydown", (e) => this.onKey(e));
    this.input.addEventListener("focus", () => {
      if (this.hits.length > 0) this.list.hidden = false;
    });
    document.addEventListener("mousedown", (e) => {
      if (!root.contains(e.target as Node)) this.list.hidden = true;
    });
  }

  enable(on: boolean): void {
    this.input.disabled = !on;
  }

  private async lookup(text: string): Promise<void> {
    const mine = ++this.seq;
    if (text.length < 1) {
      this.hits = [];
      this.list.hidden = true;
      return;
    }
    let hits: SearchHit[];
    try {
      hits = await this.search(text);
    } catch {
      return; // the banner or a toast already tells why
    }
    if (mine !== this.seq) return; // a newer lookup is on its way
    this.hits = hits;
    this.active = hits.length > 0 ? 0 : -1;
    this.render(text);
  }

  private render(text: string): void {
    clear(this.list);
    if (this.hits.length === 0) {
      this.list.append(h("li", { className: "s-empty", testid: "search-no-results" }, `Nothing visible to you matches “${text}”.`));
    }
    this.hits.forEach((hit, i) => {
      const shape = this.styles.shape(hit.className, hit.domain);
      const li = h(
        "li",
        {
          role: "option",
          testid: "search-suggestion",
          "data-mrid": hit.mrid,
          "data-class": hit.className,
          className: i === this.active ? "active" : "",
          onmousedown: (e: Event) => {
            e.preventDefault();
            this.pick(i);
          },
        },
        h("span", { className: `swatch ${shape === "square" ? "sq" : shape === "ring" ? "ring" : ""}`, style: swatchStyle(this.styles.color(hit.className), shape) }),
        h("span", { className: "s-name" }, hit.name || hit.mrid),
        h("span", { className: "s-meta" }, hit.className),
      );
      this.list.append(li);
    });
    this.list.hidden = false;
  }

  private onKey(e: KeyboardEvent): void {
    if (this.list.hidden || this.hits.length === 0) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const n = this.hits.length;
      this.active = (this.active + (e.key === "ArrowDown" ? 1 : n - 1)) % n;
      Array.from(this.list.children).forEach((li, i) => li.classList.toggle("active", i === this.active));
    } else if (e.key === "Enter" && this.active >= 0) {
      e.preventDefault();
      this.pick(this.active);
    } else if (e.key === "Escape") {
      this.list.hidden = true;
    }
  }

  private pick(i: number): void {
    const hit = this.hits[i];
    if (!hit) return;
    this.list.hidden = true;
    this.input.blur();
    this.choose(hit);
  }
}

export function swatchStyle(color: string, shape: string): string {
  return shape === "ring" ? `border-color:${color}` : `background:${color}`;
}

export function swatch(color: string, shape: string): HTMLElement {
  return h("span", { className: `swatch ${shape === "square" ? "sq" : shape === "ring" ? "ring" : ""}`, style: swatchStyle(color, shape) });
}
