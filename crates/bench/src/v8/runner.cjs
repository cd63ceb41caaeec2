// Runs one WebAssembly (wasm32-wasip1) module under Node's V8 through node:wasi, the way
// Ditto's guest runs it: the module is compiled once, then each invocation gets a fresh
// instance with the JSON parameters on stdin, and `_start` runs to completion.
// Usage: node --no-warnings runner.cjs MODULE.wasm PARAMS_FILE OUT_DIR RUNS WARMUP
// Prints one JSON object: {"compile_ns", "instantiate_ns": [...], "exec_ns": [...],
// "exit_codes": [...], "first_stdout"} (times of the measured runs only).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { WASI } = require('node:wasi');

const [wasmPath, paramsPath, outDir, runsArg, warmupArg] = process.argv.slice(2);
const runs = Number(runsArg);
const warmup = Number(warmupArg);
if (!wasmPath || !(runs > 0) || !(warmup >= 0)) {
  process.stderr.write('usage: runner.cjs MODULE.wasm PARAMS_FILE OUT_DIR RUNS WARMUP\n');
  process.exit(2);
}
const now = () => process.hrtime.bigint();

const t0 = now();
const wasmModule = new WebAssembly.Module(fs.readFileSync(wasmPath));
const compileNs = now() - t0;

const result = { compile_ns: Number(compileNs), instantiate_ns: [], exec_ns: [], exit_codes: [], first_stdout: null };
const outPath = path.join(outDir, 'stdout');
const errPath = path.join(outDir, 'stderr');
for (let i = 0; i < warmup + runs; i++) {
  const stdin = fs.openSync(paramsPath, 'r');
  const stdout = fs.openSync(outPath, 'w');
  const stderr = fs.openSync(errPath, 'w');
  try {
    const wasi = new WASI({ version: 'preview1', args: ['function'], env: {}, stdin, stdout, stderr, returnOnExit: true });
    const t1 = now();
    const instance = new WebAssembly.Instance(wasmModule, wasi.getImportObject());
    const t2 = now();
    const code = wasi.start(instance);
    const t3 = now();
    if (i >= warmup) {
      result.instantiate_ns.push(Number(t2 - t1));
      result.exec_ns.push(Number(t3 - t2));
      result.exit_codes.push(code);
    }
  } finally {
    fs.closeSync(stdin);
    fs.closeSync(stdout);
    fs.closeSync(stderr);
  }
  if (i === warmup) {
    result.first_stdout = fs.readFileSync(outPath, 'utf8');
  }
}
process.stdout.write(JSON.stringify(result) + '\n');
