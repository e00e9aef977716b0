// Source locations in a script: line and column (1-based, columns in characters) of a UTF-16 index.

export interface Loc {
  line: number;
  column: number;
}

/** A function from a UTF-16 index of `text` to its line and column. */
export function locator(text: string): (index: number) => Loc {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text[i] === "\n") starts.push(i + 1);
  return (index: number) => {
    const i = Math.max(0, Math.min(index, text.length));
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= i) lo = mid;
      else hi = mid - 1;
    }
    // Columns count characters, not UTF-16 units: a surrogate pair is one column.
    const column = [...text.slice(starts[lo], i)].length + 1;
    return { line: lo + 1, column };
  };
}

/** A problem found while importing, located in the script. */
export interface ImportFinding {
  severity: "error" | "warning" | "note";
  loc: Loc;
  message: string;
}

export function formatFinding(file: string, f: ImportFinding): string {
  return `${file}:${f.loc.line}:${f.loc.column}: ${f.severity}: ${f.message}`;
}
