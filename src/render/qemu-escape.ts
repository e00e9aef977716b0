// QEMU option escaping: inside `-opt key=value,...` a comma in a value is written as two commas.

export function qemuValue(v: string | number): string {
  return String(v).replaceAll(",", ",,");
}

/** Join `key=value` pairs into one QEMU option string, escaping every value. */
export function qemuOpts(head: string, pairs: [string, string | number | undefined][]): string {
  const rest = pairs
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => (v === "" ? `${k}=` : `${k}=${qemuValue(v!)}`));
  return [head, ...rest].join(",");
}
