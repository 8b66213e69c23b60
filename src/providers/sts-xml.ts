// A tiny, strict reader for the few documented elements of AWS STS XML answers. Workers have no DOM
// parser, and a general XML dependency brings DTDs and entities we never want. Rules: no DOCTYPE,
// each element on the path occurs exactly once within its parent, a leaf holds text only (no child
// elements, no CDATA), and only the five predefined entities and numeric references are decoded.

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
const NAME = /^[A-Za-z][A-Za-z0-9]*$/;

/** Text of the element at `path` (e.g. ["Credentials", "AccessKeyId"]), or undefined when absent/ambiguous. */
export function xmlText(xml: string, path: readonly string[]): string | undefined {
  if (/<!DOCTYPE|<!ENTITY/i.test(xml)) return undefined;
  let region = xml;
  for (const name of path) {
    const inner = onlyChild(region, name);
    if (inner === undefined) return undefined;
    region = inner;
  }
  if (region.includes("<")) return undefined;
  return decodeEntities(region);
}

function onlyChild(region: string, name: string): string | undefined {
  if (!NAME.test(name)) throw new Error(`bad element name ${name}`);
  const opens = [...region.matchAll(new RegExp(`<${name}(?:\\s[^<>]*)?>`, "g"))];
  const closes = [...region.matchAll(new RegExp(`</${name}\\s*>`, "g"))];
  if (opens.length !== 1 || closes.length !== 1) return undefined;
  const open = opens[0]!;
  const close = closes[0]!;
  const start = open.index + open[0].length;
  if (close.index < start) return undefined;
  return region.slice(start, close.index);
}

/** XML 1.0's Char production: a reference to anything else (NUL, most controls, surrogates) is malformed. */
function isXmlChar(code: number): boolean {
  return (
    code === 0x9 ||
    code === 0xa ||
    code === 0xd ||
    (code >= 0x20 && code <= 0xd7ff) ||
    (code >= 0xe000 && code <= 0xfffd) ||
    (code >= 0x10000 && code <= 0x10ffff)
  );
}

function decodeEntities(text: string): string | undefined {
  // A bare `&` or an unknown entity makes the document invalid, not something to guess around.
  if (/&(?!(?:amp|lt|gt|quot|apos|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});)/.test(text)) return undefined;
  let invalid = false;
  const decoded = text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (_match, entity: string) => {
    if (!entity.startsWith("#")) return ENTITIES[entity]!;
    const code = entity[1] === "x" ? Number.parseInt(entity.slice(2), 16) : Number(entity.slice(1));
    if (!isXmlChar(code)) invalid = true;
    return invalid ? "" : String.fromCodePoint(code);
  });
  return invalid ? undefined : decoded.trim();
}
