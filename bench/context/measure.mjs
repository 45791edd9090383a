// Token counts for bench/context.sh: posts each JSON-RPC request of a spec file to the
// gateway and counts what a client hands the model (the tool definitions of tools/list,
// the text blocks of a tool result) with gpt-tokenizer's o200k_base, offline.
// Usage: node measure.mjs TOKENIZER_DIR SPEC.json  (SPEC: [{label, url, headers, body, pick}])
// Prints one line per request: label<TAB>bytes<TAB>tokens (tokens "" when it failed).
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const [dir, specFile] = process.argv.slice(2);
const { countTokens } = createRequire(`${dir}/`)("gpt-tokenizer/encoding/o200k_base");
const spec = JSON.parse(readFileSync(specFile, "utf8"));

function picked(result, pick) {
  if (pick === "tools") return JSON.stringify(result.tools);
  if (pick === "text") {
    if (result.isError) throw new Error(`tool error: ${JSON.stringify(result.content)}`);
    return result.content.filter((c) => c.type === "text").map((c) => c.text).join("\n");
  }
  if (pick === "structured") return JSON.stringify(result.structuredContent);
  throw new Error(`unknown pick ${pick}`);
}

let failed = 0;
for (const r of spec) {
  try {
    const res = await fetch(r.url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream", ...r.headers },
      body: JSON.stringify(r.body),
    });
    const doc = await res.json();
    if (!doc.result) throw new Error(`HTTP ${res.status}: ${JSON.stringify(doc).slice(0, 300)}`);
    const text = picked(doc.result, r.pick);
    console.log(`${r.label}\t${Buffer.byteLength(text)}\t${countTokens(text)}`);
  } catch (e) {
    failed += 1;
    console.error(`${r.label}: ${e.message}`);
    console.log(`${r.label}\t\t`);
  }
}
process.exit(failed ? 1 : 0);
