// Download progress on stderr: a bar redrawn in place on a terminal, a line every 10 % elsewhere.

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** One line: `[#########           ]  45%  120 MiB / 260 MiB`, or the bytes alone without a total. */
export function renderBar(received: number, total: number | null, width = 30): string {
  if (total === null || total <= 0) return `${formatBytes(received)}`;
  const f = Math.min(1, received / total);
  const filled = Math.round(f * width);
  return `[${"#".repeat(filled)}${" ".repeat(width - filled)}] ${String(Math.floor(f * 100)).padStart(3)}%  ${formatBytes(received)} / ${formatBytes(total)}`;
}

/**
 * An `onBytes` callback drawing progress on `out` (stderr). On a terminal the bar is redrawn at most
 * ten times a second and ends with a newline at 100 %; otherwise one line per 10 %.
 */
export function byteMeter(
  out: { write(s: string): unknown; isTTY?: boolean },
  label: string,
): (received: number, total: number | null) => void {
  let lastDraw = 0;
  let lastDecile = -1;
  let finished = false;
  return (received, total) => {
    if (finished) return;
    const done = total !== null && received >= total;
    if (out.isTTY) {
      const now = Date.now();
      if (!done && now - lastDraw < 100) return;
      lastDraw = now;
      out.write(`\r${label} ${renderBar(received, total)}${done ? "\n" : ""}`);
    } else {
      const decile = total ? Math.floor((received / total) * 10) : Math.floor(received / 2 ** 27);
      if (decile === lastDecile && !done) return;
      lastDecile = decile;
      out.write(`${label} ${renderBar(received, total)}\n`);
    }
    finished = done;
  };
}
