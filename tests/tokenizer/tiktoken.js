// Reference GPT-2 tokenization with the npm package `tiktoken` (OpenAI's
// tokenizer compiled to WebAssembly).
//   node tiktoken.js ids INPUT OUTPUT   writes the ids of INPUT as a JSON array
//   node tiktoken.js bench INPUT        prints {"bytes","tokens","mb_per_s"} (best of 3)
const fs = require("fs");
const { get_encoding } = require("tiktoken");

const [mode, input, output] = process.argv.slice(2);
const text = fs.readFileSync(input, "utf8");
const enc = get_encoding("gpt2");
if (mode === "ids") {
  fs.writeFileSync(output, JSON.stringify(Array.from(enc.encode_ordinary(text))));
} else if (mode === "bench") {
  let best = Infinity, tokens = 0;
  for (let i = 0; i < 3; ++i) {
    const t0 = process.hrtime.bigint();
    tokens = enc.encode_ordinary(text).length;
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  const bytes = Buffer.byteLength(text, "utf8");
  console.log(JSON.stringify({ bytes, tokens, mb_per_s: bytes / 1e6 / best }));
} else {
  console.error("usage: tiktoken.js ids INPUT OUTPUT | bench INPUT");
  process.exit(2);
}
enc.free();
