/** The labels file of `motive eval`: header, quoting, blank lines, and every error with its line. */
import { describe, expect, it } from 'vitest';
import { LabelsError, parseLabels } from '../../../daemon/cli/labels-csv.js';

const entries = (text: string): Array<[string, string]> => [...parseLabels(text, 'l.csv').labels];
const error = (text: string): string => {
  try {
    parseLabels(text, 'l.csv');
  } catch (err) {
    expect(err).toBeInstanceOf(LabelsError);
    return (err as Error).message;
  }
  throw new Error('parsed without an error');
};

describe('parseLabels', () => {
  it('reads id and label in any column order, ignoring other columns', () => {
    expect(entries('id,label\na,clean\nb,jitter\n')).toEqual([
      ['a', 'clean'],
      ['b', 'jitter'],
    ]);
    expect(entries('note,Label,ID\nx,clean,a\ny,frozen,b')).toEqual([
      ['a', 'clean'],
      ['b', 'frozen'],
    ]);
  });

  it('accepts quoted fields, escaped quotes, commas and line breaks inside quotes, CRLF, a BOM and blank lines', () => {
    const text = '\ufeffid,label,comment\r\n\r\n"clip,1","clean","said ""ok"""\r\n  \r\n"c2",jitter,"two\nlines"\nc3,"frozen",\n\n';
    expect(entries(text)).toEqual([
      ['clip,1', 'clean'],
      ['c2', 'jitter'],
      ['c3', 'frozen'],
    ]);
  });

  it('keeps a repeated id with the same label once and counts it', () => {
    const parsed = parseLabels('id,label\na,clean\nb,jitter\na,clean\n');
    expect([...parsed.labels]).toEqual([
      ['a', 'clean'],
      ['b', 'jitter'],
    ]);
    expect(parsed.duplicates).toBe(1);
  });

  it('names the file and line of every malformed row', () => {
    expect(error('')).toBe('l.csv: empty; expected a header line "id,label"');
    expect(error('\n\n')).toMatch(/^l\.csv: empty/);
    expect(error('clip,label\na,clean')).toMatch(/^l\.csv:1: the header must name an "id" and a "label" column/);
    expect(error('id,label\na,clean\n\nb\n')).toBe('l.csv:4: 1 field(s), the header has 2');
    expect(error('id,label\na,clean,extra\n')).toBe('l.csv:2: 3 field(s), the header has 2');
    expect(error('id,label\n,clean\n')).toBe('l.csv:2: empty id');
    expect(error('id,label\na, \n')).toBe('l.csv:2: empty label for id "a"');
    expect(error('id,label\na,"clean\nb,jitter\n')).toBe('l.csv:2: a quoted field is not closed');
    expect(error('id,label\na,"clean"x\n')).toBe('l.csv:2: text after a closing quote');
    expect(error('id,label\na,cl"ean\n')).toBe('l.csv:2: a quote inside an unquoted field');
    // A record that spans lines is reported at the line it starts on.
    expect(error('id,label,c\na,clean,"x\ny"\nb,jitter\n')).toBe('l.csv:4: 2 field(s), the header has 3');
  });

  it('refuses an id labelled twice differently, naming both lines', () => {
    expect(error('id,label\na,clean\nb,jitter\n\na,frozen\n')).toBe('l.csv:5: id "a" is labelled "frozen" here and "clean" on line 2');
  });
});
