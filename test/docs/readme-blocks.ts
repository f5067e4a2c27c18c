import { readFileSync } from 'node:fs';
import { marked } from 'marked';
import { ROOT } from '../helpers/build.ts';

/**
 * The README's tested blocks: a fenced code block right after an `<!-- test: NAME -->` comment.
 * marked's lexer finds them as a Markdown reader would (fences, indentation, HTML comments), so a
 * block the test runs is exactly the block a user copies.
 */
export function readmeBlocks(file = `${ROOT}/README.md`): Map<string, { lang: string; text: string }> {
  const tokens = marked.lexer(readFileSync(file, 'utf8'));
  const out = new Map<string, { lang: string; text: string }>();
  let pending: string | undefined;
  for (const t of tokens) {
    if (t.type === 'html') {
      const m = /<!--\s*test:\s*([\w-]+)\s*-->/.exec(t.text);
      if (m) pending = m[1];
    } else if (t.type === 'code' && pending !== undefined) {
      if (out.has(pending)) throw new Error(`README: two blocks are marked test: ${pending}`);
      out.set(pending, { lang: t.lang ?? '', text: t.text });
      pending = undefined;
    } else if (t.type !== 'space') {
      pending = undefined;
    }
  }
  return out;
}

export function block(blocks: ReturnType<typeof readmeBlocks>, name: string): string {
  const b = blocks.get(name);
  if (!b) throw new Error(`README has no block marked <!-- test: ${name} -->`);
  return b.text;
}
