// Map colours by the level of the network: nominal voltage in electricity, maximum pressure in gas.
// The voltage bands follow the convention of European grid maps (400 kV red, 220/275 kV green,
// 110-150 kV blue, lower voltages purple and amber); gas tiers run from dark brown (transmission at
// 70 bar and more) to yellow (distribution). The API derives both levels (NetworkLevel).

export interface Band {
  key: string;
  label: string;
  color: string;
  // The band holds values from `min` (inclusive) up to the next band's `min`.
  min: number;
}

export const VOLTAGE_BANDS: Band[] = [
  { key: "kv-380", label: "380–400 kV and above", color: "#dc2626", min: 300 },
  { key: "kv-220", label: "220–275 kV", color: "#16a34a", min: 200 },
  { key: "kv-110", label: "110–150 kV", color: "#2563eb", min: 100 },
  { key: "kv-30", label: "30–99 kV", color: "#9333ea", min: 30 },
  { key: "kv-low", label: "below 30 kV", color: "#f59e0b", min: 0 },
];

export const PRESSURE_BANDS: Band[] = [
  { key: "bar-70", label: "70 bar and above", color: "#78350f", min: 70 },
  { key: "bar-40", label: "40–69 bar", color: "#b45309", min: 40 },
  { key: "bar-16", label: "16–39 bar", color: "#d97706", min: 16 },
  { key: "bar-low", label: "below 16 bar", color: "#facc15", min: 0 },
];

export const UNKNOWN_LEVEL = "#94a3b8";

function bandOf(bands: Band[], value: number | null | undefined): Band | null {
  if (value === null || value === undefined || !Number.isFinite(value)) return null;
  return bands.find((b) => value >= b.min) ?? null;
}

export function voltageBand(kv: number | null | undefined): Band | null {
  return bandOf(VOLTAGE_BANDS, kv);
}

export function pressureBand(bar: number | null | undefined): Band | null {
  return bandOf(PRESSURE_BANDS, bar);
}

/** The map colour of an object: its voltage band, else its pressure tier, else null (class colour). */
export function levelColor(kv: number | null, bar: number | null): string | null {
  return voltageBand(kv)?.color ?? pressureBand(bar)?.color ?? null;
}
