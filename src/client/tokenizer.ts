/**
 * Splitting a command line into words the way a POSIX shell does (without expansions), so that
 * names with spaces can be typed with quotes: `upload_file "my file.txt" g1`.
 *
 * - Outside quotes, blanks (space, tab) separate words and a backslash makes the next character
 *   literal (a backslash before the end of the line is dropped, as a line continuation would be).
 * - Single quotes: everything up to the next single quote is literal.
 * - Double quotes: literal except that a backslash escapes `"`, `\`, `$` and `` ` `` (before any
 *   other character the backslash stays).
 * - Adjacent parts join into one word (`a'b c'"d"` is the single word `ab cd`); `''` is an empty word.
 * - An unclosed quote is a {@link UsageError}.
 *
 * Pure: no I/O.
 */
import { UsageError } from '../common/errors.js';

const BLANK = /[ \t\r\n]/;

/** Splits `line` into words. Throws UsageError (code USAGE) on an unclosed quote. */
export function tokenize(line: string): string[] {
  const words: string[] = [];
  let word = '';
  // A word exists once any part of it was seen, even an empty quoted one: `''` is a word.
  let inWord = false;
  let i = 0;
  const n = line.length;
  while (i < n) {
    const c = line[i]!;
    if (BLANK.test(c)) {
      if (inWord) { words.push(word); word = ''; inWord = false; }
      i++;
    } else if (c === '\\') {
      if (i + 1 < n) { word += line[i + 1]; inWord = true; }
      i += 2;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end === -1) throw new UsageError('unclosed single quote (close it with \')');
      word += line.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i++;
      let closed = false;
      while (i < n) {
        const d = line[i]!;
        if (d === '"') { closed = true; i++; break; }
        if (d === '\\' && i + 1 < n && '"\\$`'.includes(line[i + 1]!)) { word += line[i + 1]; i += 2; continue; }
        word += d;
        i++;
      }
      if (!closed) throw new UsageError('unclosed double quote (close it with ")');
      inWord = true;
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/**
 * Quotes one word so that {@link tokenize} gives it back unchanged: plain words stay as they are,
 * anything else goes in single quotes (a single quote inside becomes `'\''`).
 */
export function quoteWord(word: string): string {
  if (word === '') return "''";
  if (/^[A-Za-z0-9._@+\-/=:,%]+$/.test(word)) return word;
  return "'" + word.replace(/'/g, "'\\''") + "'";
}

/** Quotes every word and joins them with spaces: the inverse of {@link tokenize}. */
export function quoteWords(words: readonly string[]): string {
  return words.map(quoteWord).join(' ');
}
