// Split a line the way a POSIX shell would for the quoting qnet prints (bare words and '…' with '\'').

export function shellWords(line: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    if (line[i] === " ") {
      i++;
      continue;
    }
    let word = "";
    while (i < line.length && line[i] !== " ") {
      if (line[i] === "'") {
        const end = line.indexOf("'", i + 1);
        if (end < 0) throw new Error(`unterminated quote in ${JSON.stringify(line)}`);
        word += line.slice(i + 1, end);
        i = end + 1;
      } else if (line[i] === "\\") {
        word += line[i + 1] ?? "";
        i += 2;
      } else {
        word += line[i];
        i++;
      }
    }
    words.push(word);
  }
  return words;
}
