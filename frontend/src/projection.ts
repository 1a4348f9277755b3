// Geographic layout coordinates: spherical Web Mercator expressed in degrees, so x stays the
// longitude and y grows with latitude (north is up) while shapes keep their familiar proportions.

const RAD = Math.PI / 180;
const MAX_LAT = 85;

export function lonLatToMap(lon: number, lat: number): { x: number; y: number } {
  const clamped = Math.max(-MAX_LAT, Math.min(MAX_LAT, lat));
  const y = Math.log(Math.tan(Math.PI / 4 + (clamped * RAD) / 2)) / RAD;
  return { x: lon, y };
}

export function mapToLonLat(x: number, y: number): { lon: number; lat: number } {
  const lat = (2 * Math.atan(Math.exp(y * RAD)) - Math.PI / 2) / RAD;
  return { lon: x, lat };
}
