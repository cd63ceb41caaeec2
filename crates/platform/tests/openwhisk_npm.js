// Compatibility check with a client nobody here wrote: the `openwhisk` npm package.
// Usage: node openwhisk_npm.js APIHOST AUTH MODULE.wasm  (prints "ok" and exits 0 on success)
const fs = require('fs');
const assert = require('assert');
const openwhisk = require('openwhisk');
const [apihost, api_key, wasmPath] = process.argv.slice(2);
const ow = openwhisk({ apihost, api_key });
(async () => {
  const created = await ow.actions.create({ name: 'npm-echo', action: fs.readFileSync(wasmPath), kind: 'wasm', overwrite: true });
  assert.strictEqual(created.name, 'npm-echo');
  const got = await ow.actions.get({ name: 'npm-echo' });
  assert.strictEqual(got.exec.kind, 'wasm');
  const blocking = await ow.actions.invoke({ name: 'npm-echo', blocking: true, params: { hello: 'npm' } });
  assert.strictEqual(blocking.response.success, true);
  assert.deepStrictEqual(blocking.response.result, { hello: 'npm' });
  const result = await ow.actions.invoke({ name: 'npm-echo', blocking: true, result: true, params: { n: 7 } });
  assert.deepStrictEqual(result, { n: 7 });
  const queued = await ow.actions.invoke({ name: 'npm-echo', params: { async: true } });
  assert.ok(/^[0-9a-f]{32}$/.test(queued.activationId), 'activation id');
  let act;
  for (let i = 0; i < 200; i++) {
    try { act = await ow.activations.get({ name: queued.activationId }); break; } catch (e) { await new Promise(r => setTimeout(r, 25)); }
  }
  assert.ok(act, 'non-blocking activation recorded');
  assert.deepStrictEqual(act.response.result, { async: true });
  const list = await ow.activations.list({ limit: 5 });
  assert.ok(list.length >= 3, 'activations listed');
  const actions = await ow.actions.list();
  assert.ok(actions.some(a => a.name === 'npm-echo'));
  await ow.actions.delete({ name: 'npm-echo' });
  console.log('ok');
})().catch(e => { console.error('FAILED:', e && (e.stack || e.message || e)); process.exit(1); });
