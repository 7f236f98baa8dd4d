/**
 * The labels file of `motive eval`: CSV with a header naming an `id` and a `label` column (any
 * order; other columns are ignored). Fields may be quoted as RFC 4180 says (`"a,b"`, `"say ""hi"""`,
 * line breaks inside quotes); blank lines are skipped; a UTF-8 byte-order mark and CRLF line ends are
 * accepted. Every error names the file and the line it is on.
 */

export class LabelsError extends Error {
  override readonly name = 'LabelsError';
}

export interface LabelsFile {
  /** Sample id → label, in first-seen order. */
  readonly labels: ReadonlyMap<string, string>;
  /** Rows that repeated an id with the same label (kept once). */
  readonly duplicates: number;
}

interface Record {
  readonly line: number;
  readonly fields: string[];
}

/** Splits CSV text into records, each with the line number it starts on; blank lines give none. */
function records(text: string, file: string): Record[] {
  const out: Record[] = [];
  let line = 1;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  while (i < text.length) {
    const start = line;
    const fields: string[] = [];
    let blank = true;
    for (;;) {
      let value = '';
      if (text[i] === '"') {
        blank = false;
        i++;
        for (;;) {
          if (i >= text.length) throw new LabelsError(`${file}:${start}: a quoted field is not closed`);
          const c = text[i] as string;
          if (c === '"') {
            if (text[i + 1] === '"') {
              value += '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (c === '\n') line++;
          value += c;
          i++;
        }
        const next = text[i];
        if (next !== undefined && next !== ',' && next !== '\n' && !(next === '\r' && text[i + 1] === '\n')) {
          throw new LabelsError(`${file}:${line}: text after a closing quote`);
        }
      } else {
        while (i < text.length && text[i] !== ',' && text[i] !== '\n' && !(text[i] === '\r' && text[i + 1] === '\n')) {
          if (text[i] === '"') throw new LabelsError(`${file}:${line}: a quote inside an unquoted field`);
          value += text[i] as string;
          i++;
        }
        if (value.trim() !== '') blank = false;
      }
      fields.push(value);
      if (text[i] === ',') {
        blank = false;
        i++;
        continue;
      }
      break;
    }
    if (text[i] === '\r') i++;
    if (text[i] === '\n') {
      i++;
      line++;
    }
    if (!blank) out.push({ line: start, fields });
  }
  return out;
}

/**
 * Parses a labels file. Errors (as {@link LabelsError}): no header, a header without `id` or
 * `label`, a row with a different number of fields than the header, an empty id or label, and an
 * id given two different labels.
 */
export function parseLabels(text: string, file = 'labels.csv'): LabelsFile {
  const rows = records(text, file);
  const header = rows[0];
  if (header === undefined) throw new LabelsError(`${file}: empty; expected a header line "id,label"`);
  const names = header.fields.map((f) => f.trim().toLowerCase());
  const idCol = names.indexOf('id');
  const labelCol = names.indexOf('label');
  if (idCol < 0 || labelCol < 0) {
    throw new LabelsError(
      `${file}:${header.line}: the header must name an "id" and a "label" column (got ${JSON.stringify(header.fields.join(','))})`,
    );
  }
  const labels = new Map<string, string>();
  const firstLine = new Map<string, number>();
  let duplicates = 0;
  for (const row of rows.slice(1)) {
    if (row.fields.length !== header.fields.length) {
      throw new LabelsError(`${file}:${row.line}: ${row.fields.length} field(s), the header has ${header.fields.length}`);
    }
    const id = (row.fields[idCol] as string).trim();
    const label = (row.fields[labelCol] as string).trim();
    if (id === '') throw new LabelsError(`${file}:${row.line}: empty id`);
    if (label === '') throw new LabelsError(`${file}:${row.line}: empty label for id ${JSON.stringify(id)}`);
    const before = labels.get(id);
    if (before === undefined) {
      labels.set(id, label);
      firstLine.set(id, row.line);
    } else if (before === label) {
      duplicates++;
    } else {
      throw new LabelsError(
        `${file}:${row.line}: id ${JSON.stringify(id)} is labelled ${JSON.stringify(label)} here and ${JSON.stringify(before)} on line ${firstLine.get(id)}`,
      );
    }
  }
  return { labels, duplicates };
}
