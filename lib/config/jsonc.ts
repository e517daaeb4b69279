/**
 * JSON with comments, as v2ray reads its config files: `// line`, `# line` and `/* block *\/`
 * comments are allowed anywhere whitespace is. Everything else is strict JSON (no trailing commas,
 * no single quotes), like Go's encoding/json behind v2ray's comment filter.
 *
 * Errors are SyntaxErrors whose message ends with `at line L column C` counted in the ORIGINAL text
 * (1-based), so a user can find the spot in the file they wrote.
 */

/** A position in the text, 1-based. */
export interface TextPosition {
  line: number;
  column: number;
}

/** Line and column (1-based) of a UTF-16 offset into `text`. */
export function positionAt(text: string, offset: number): TextPosition {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 0x0a) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: end - lineStart + 1 };
}

function fail(text: string, offset: number, what: string): SyntaxError {
  const { line, column } = positionAt(text, offset);
  return new SyntaxError(`${what} at line ${line} column ${column}`);
}

/**
 * Replaces every comment with spaces, keeping newlines, so each remaining character keeps its
 * offset (and line and column). Comment markers inside strings are left alone.
 */
export function stripComments(text: string): string {
  const out: string[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (c === '"') {
      // Copy the string literal through, honouring escapes, so "http://x" keeps its slashes.
      const start = i++;
      while (i < n && text[i] !== '"' && text[i] !== "\n") i += text[i] === "\\" ? 2 : 1;
      i = Math.min(i + 1, n);
      out.push(text.slice(start, i));
    } else if (c === "#" || (c === "/" && text[i + 1] === "/")) {
      while (i < n && text[i] !== "\n") {
        out.push(" ");
        i++;
      }
    } else if (c === "/" && text[i + 1] === "*") {
      const start = i;
      const close = text.indexOf("*/", i + 2);
      if (close < 0) throw fail(text, start, "unterminated /* comment");
      for (; i < close + 2; i++) out.push(text[i] === "\n" || text[i] === "\r" ? text[i] : " ");
    } else {
      out.push(c);
      i++;
    }
  }
  return out.join("");
}

/**
 * Parses JSON with comments. Throws SyntaxError naming what was wrong and where, e.g.
 * `unexpected end of input at line 4 column 1`, `unexpected character "}" at line 2 column 9`,
 * `duplicate key "port" at line 3 column 5`.
 */
export function parseJsonc(text: string): unknown {
  return new Parser(text, stripComments(text)).parseDocument();
}

const WS = new Set([" ", "\t", "\n", "\r", "\uFEFF"]);
const ESCAPES: Record<string, string> = {
  '"': '"',
  "\\": "\\",
  "/": "/",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
};
const NUMBER = /-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
/** Nesting bound: a config is a few levels deep; this keeps hostile input off the call stack. */
const MAX_DEPTH = 256;

class Parser {
  #original: string;
  #s: string;
  #i = 0;

  constructor(original: string, stripped: string) {
    this.#original = original;
    this.#s = stripped;
  }

  parseDocument(): unknown {
    this.#skip();
    const value = this.#value(0);
    this.#skip();
    if (this.#i < this.#s.length) throw this.#unexpected();
    return value;
  }

  #skip(): void {
    while (this.#i < this.#s.length && WS.has(this.#s[this.#i])) this.#i++;
  }

  #unexpected(): SyntaxError {
    if (this.#i >= this.#s.length) return fail(this.#original, this.#i, "unexpected end of input");
    return fail(
      this.#original,
      this.#i,
      `unexpected character ${JSON.stringify(this.#s[this.#i])}`,
    );
  }

  #expect(c: string): void {
    this.#skip();
    if (this.#s[this.#i] !== c) throw this.#unexpected();
    this.#i++;
  }

  #value(depth: number): unknown {
    if (depth > MAX_DEPTH) throw fail(this.#original, this.#i, "nesting too deep");
    this.#skip();
    const c = this.#s[this.#i];
    switch (c) {
      case "{":
        return this.#object(depth);
      case "[":
        return this.#array(depth);
      case '"':
        return this.#string();
      case "t":
        return this.#literal("true", true);
      case "f":
        return this.#literal("false", false);
      case "n":
        return this.#literal("null", null);
      default:
        if (c === "-" || (c >= "0" && c <= "9")) return this.#number();
        throw this.#unexpected();
    }
  }

  #literal<T>(word: string, value: T): T {
    for (let k = 0; k < word.length; k++, this.#i++) {
      if (this.#s[this.#i] !== word[k]) throw this.#unexpected();
    }
    return value;
  }

  #number(): number {
    NUMBER.lastIndex = this.#i;
    const m = NUMBER.exec(this.#s);
    if (!m || m[0] === "-") {
      if (m) this.#i++;
      throw this.#unexpected();
    }
    this.#i += m[0].length;
    return Number(m[0]);
  }

  #string(): string {
    const start = this.#i++;
    let out = "";
    for (;;) {
      if (this.#i >= this.#s.length) throw this.#unexpected();
      const c = this.#s[this.#i];
      if (c === '"') {
        this.#i++;
        return out;
      }
      if (c < " ") {
        if (c === "\n") throw fail(this.#original, start, "unterminated string");
        throw fail(this.#original, this.#i, "control character in string");
      }
      if (c !== "\\") {
        out += c;
        this.#i++;
        continue;
      }
      const e = this.#s[this.#i + 1];
      if (e === "u") {
        const hex = this.#s.slice(this.#i + 2, this.#i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw fail(this.#original, this.#i, "bad \\u escape");
        out += String.fromCharCode(parseInt(hex, 16));
        this.#i += 6;
      } else if (e !== undefined && e in ESCAPES) {
        out += ESCAPES[e];
        this.#i += 2;
      } else {
        if (e === undefined) {
          this.#i++;
          throw this.#unexpected();
        }
        throw fail(this.#original, this.#i, `bad escape "\\${e}"`);
      }
    }
  }

  #array(depth: number): unknown[] {
    const out: unknown[] = [];
    this.#items("]", () => out.push(this.#value(depth + 1)));
    return out;
  }

  #object(depth: number): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    this.#items("}", () => {
      this.#skip();
      if (this.#s[this.#i] !== '"') throw this.#unexpected();
      const keyAt = this.#i;
      const key = this.#string();
      // encoding/json silently keeps the last of two equal keys; a duplicate is nearly always a
      // mistake, so say so instead.
      if (Object.hasOwn(out, key)) {
        throw fail(this.#original, keyAt, `duplicate key ${JSON.stringify(key)}`);
      }
      this.#expect(":");
      // defineProperty, not assignment: a "__proto__" key must stay a plain key.
      Object.defineProperty(out, key, {
        value: this.#value(depth + 1),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    });
    return out;
  }

  /** From an opening bracket to its `close`: `item` reads each member; commas between them. */
  #items(close: "]" | "}", item: () => void): void {
    this.#i++;
    this.#skip();
    if (this.#s[this.#i] === close) {
      this.#i++;
      return;
    }
    for (;;) {
      item();
      this.#skip();
      const c = this.#s[this.#i];
      if (c === ",") {
        this.#i++;
        continue;
      }
      if (c === close) {
        this.#i++;
        return;
      }
      throw this.#unexpected();
    }
  }
}
