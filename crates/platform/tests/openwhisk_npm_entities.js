// The rest of OpenWhisk through a client nobody here wrote (the `openwhisk` npm package):
// packages, bindings, whisk.system, triggers, rules, feeds and alarms, sequences, web
// actions, API routes, and the small things, each with its bad input.
// Usage: node openwhisk_npm_entities.js APIHOST AUTH MODULE.wasm OTHER_AUTH
// (prints "ok" and exits 0 on success).
const fs = require('fs');
const assert = require('assert');
const openwhisk = require('openwhisk');
const [apihost, api_key, wasmPath, other_key] = process.argv.slice(2);
const ow = openwhisk({ apihost, api_key });
const other = openwhisk({ apihost, api_key: other_key });
const wasm = fs.readFileSync(wasmPath);
const sleep = ms => new Promise(r => setTimeout(r, ms));
const basic = 'Basic ' + Buffer.from(api_key).toString('base64');

async function fails(promise, status, what) {
  try {
    await promise;
  } catch (e) {
    assert.strictEqual(e.statusCode, status, `${what}: expected HTTP ${status}, got ${e.statusCode} (${e.message})`);
    if (status === 502) {
      assert.ok(e.error && e.error.response && e.error.response.success === false, `${what}: the failed activation`);
    } else {
      assert.ok(e.error && typeof e.error.error === 'string' && e.error.code, `${what}: OpenWhisk JSON error body`);
    }
    return e;
  }
  assert.fail(`${what}: expected HTTP ${status}, but it succeeded`);
}

async function until(what, fn, ms = 15000) {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > ms) assert.fail(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function packages() {
  // CRUD, parameters, actions addressed as pkg/action everywhere.
  const pkg = await ow.packages.create({ name: 'tools', package: { parameters: [{ key: 'p', value: 'pkg' }, { key: 'q', value: 'pkg' }] } });
  assert.strictEqual(pkg.name, 'tools');
  const created = await ow.actions.create({ name: 'tools/echo', action: wasm, kind: 'wasm', params: { q: 'action' }, annotations: { 'web-export': true } });
  assert.strictEqual(created.name, 'echo');
  assert.strictEqual(created.namespace, 'guest/tools');
  assert.ok(created.exec.code, 'create responses carry exec.code');
  const got = await ow.actions.get({ name: 'tools/echo' });
  assert.strictEqual(got.exec.kind, 'wasm');
  const r = await ow.actions.invoke({ name: 'tools/echo', blocking: true, result: true, params: { r: 'req' } });
  assert.deepStrictEqual(r, { p: 'pkg', q: 'action', r: 'req' }, 'package < action < request parameters');
  const r2 = await ow.actions.invoke({ name: '/_/tools/echo', blocking: true, result: true, params: { p: 'req' } });
  assert.strictEqual(r2.p, 'req');
  const full = await ow.packages.get({ name: 'tools' });
  assert.deepStrictEqual(full.actions.map(a => a.name), ['echo']);
  assert.deepStrictEqual(await ow.packages.list({ count: true }), { packages: 1 });

  // Bindings: parameters of the binding over the bound package's.
  await ow.packages.create({ name: 'tools-b', package: { binding: { namespace: '_', name: 'tools' }, parameters: [{ key: 'p', value: 'binding' }] } });
  const rb = await ow.actions.invoke({ name: 'tools-b/echo', blocking: true, result: true });
  assert.deepStrictEqual(rb, { p: 'binding', q: 'action' });
  const b = await ow.packages.get({ name: 'tools-b' });
  assert.deepStrictEqual(b.binding, { namespace: 'guest', name: 'tools' });

  // Shared packages: another namespace may use a published package, not a private one.
  await fails(other.actions.invoke({ name: '/guest/tools/echo', blocking: true }), 403, 'private package of another namespace');
  await ow.packages.update({ name: 'tools', package: { publish: true } });
  const shared = await other.actions.invoke({ name: '/guest/tools/echo', blocking: true, result: true, params: { s: 1 } });
  assert.strictEqual(shared.s, 1);
  await other.packages.create({ name: 'mine', package: { binding: { namespace: 'guest', name: 'tools' } } });
  assert.strictEqual((await other.actions.invoke({ name: 'mine/echo', blocking: true, result: true })).q, 'action');

  // Bad input.
  await fails(ow.actions.create({ name: 'nopkg/a', action: wasm, kind: 'wasm' }), 404, 'action in an unknown package');
  await fails(ow.actions.invoke({ name: 'nopkg/a', blocking: true }), 404, 'invoke in an unknown package');
  await fails(ow.packages.create({ name: 'dangling', package: { binding: { namespace: '_', name: 'missing' } } }), 400, 'binding to a missing package');
  await fails(ow.packages.create({ name: 'bad name!' }), 400, 'invalid package name');
  await fails(ow.packages.delete({ name: 'tools' }), 409, 'deleting a package with actions');
  await fails(ow.packages.create({ name: 'x', package: {}, namespace: 'whisk.system' }), 403, 'writing whisk.system');
}

async function whiskSystem() {
  const pkgs = await ow.packages.list({ namespace: 'whisk.system' });
  assert.deepStrictEqual(pkgs.map(p => p.name).sort(), ['alarms', 'utils']);
  const utils = await ow.packages.get({ name: '/whisk.system/utils' });
  assert.deepStrictEqual(utils.actions.map(a => a.name).sort(), ['cat', 'date', 'echo', 'head', 'namespace', 'sort', 'split']);
  const u = name => `/whisk.system/utils/${name}`;
  const run = (name, params) => ow.actions.invoke({ name: u(name), blocking: true, result: true, params });
  assert.deepStrictEqual(await run('echo', { a: 1 }), { a: 1 });
  assert.deepStrictEqual(await run('split', { payload: 'c\nb\na' }), { lines: ['c', 'b', 'a'], payload: 'c\nb\na' });
  assert.deepStrictEqual(await run('sort', { lines: ['c', 'b', 'a'] }), { lines: ['a', 'b', 'c'], length: 3 });
  assert.deepStrictEqual(await run('head', { lines: ['c', 'b', 'a'], num: 2 }), { lines: ['c', 'b'], num: 2 });
  assert.deepStrictEqual(await run('cat', { lines: ['x', 'y'] }), { lines: ['x', 'y'], payload: 'x\ny' });
  assert.deepStrictEqual(await run('namespace', {}), { namespace: 'guest' });
  assert.ok(!isNaN(Date.parse((await run('date', {})).date)));
  await fails(ow.actions.invoke({ name: u('nope'), blocking: true }), 404, 'unknown whisk.system action');
}

async function sequences() {
  // A sequence of our package's echo and whisk.system's utils.
  const seq = await ow.actions.create({ name: 'lines', sequence: ['/whisk.system/utils/split', '/whisk.system/utils/sort', '/_/tools/echo'] });
  assert.strictEqual(seq.exec.kind, 'sequence');
  assert.deepStrictEqual(seq.exec.components, ['/whisk.system/utils/split', '/whisk.system/utils/sort', '/guest/tools/echo']);
  const act = await ow.actions.invoke({ name: 'lines', blocking: true, params: { payload: 'b\na' } });
  assert.strictEqual(act.response.success, true);
  assert.deepStrictEqual(act.response.result.lines, ['a', 'b']);
  assert.strictEqual(act.logs.length, 3, 'logs list the component activations');
  for (const id of act.logs) {
    assert.ok(/^[0-9a-f]{32}$/.test(id));
    await until(`component ${id}`, () => ow.activations.get({ name: id }).catch(() => null));
  }
  // An error stops the chain: split without payload fails; sort never runs.
  const failed = await fails(ow.actions.invoke({ name: 'lines', blocking: true }), 502, 'sequence with a failing component');
  assert.strictEqual(failed.error.logs.length, 1, 'the chain stopped at the first error');
  // A shared sequence runs its components with its owner's access.
  await ow.actions.create({ name: 'privecho', action: wasm, kind: 'wasm' });
  await ow.actions.create({ name: 'tools/pipe', sequence: ['privecho'] });
  await fails(other.actions.invoke({ name: '/guest/privecho', blocking: true }), 403, 'private action of another namespace');
  assert.deepStrictEqual((await other.actions.invoke({ name: '/guest/tools/pipe', blocking: true, result: true, params: { z: 1 } })).z, 1);
  // Cycles and missing components are refused.
  await ow.actions.create({ name: 's1', sequence: ['/whisk.system/utils/echo'] });
  await ow.actions.create({ name: 's2', sequence: ['s1'] });
  await fails(ow.actions.update({ name: 's1', sequence: ['s2'] }), 400, 'cycle in a sequence');
  await fails(ow.actions.create({ name: 's3', sequence: ['s3'] }), 400, 'sequence of itself');
  await fails(ow.actions.create({ name: 's4', sequence: ['missing'] }), 400, 'sequence of a missing action');
}

async function triggersAndRules() {
  await ow.triggers.create({ name: 'evt', trigger: { parameters: [{ key: 'from', value: 'trigger' }] } });
  await fails(ow.rules.create({ name: 'bad', trigger: 'evt', action: 'missing' }), 404, 'rule to a missing action');
  await fails(ow.rules.create({ name: 'bad', trigger: 'nope', action: 'tools/echo' }), 404, 'rule from a missing trigger');
  const rule = await ow.rules.create({ name: 'evt-echo', trigger: 'evt', action: 'tools/echo' });
  assert.strictEqual(rule.status, 'active');
  await ow.rules.create({ name: 'evt-sys', trigger: '/_/evt', action: '/whisk.system/utils/echo' });
  const t = await ow.triggers.get({ name: 'evt' });
  assert.deepStrictEqual(Object.keys(t.rules).sort(), ['guest/evt-echo', 'guest/evt-sys']);
  const fired = await ow.triggers.invoke({ name: 'evt', params: { n: 1 } });
  assert.ok(/^[0-9a-f]{32}$/.test(fired.activationId));
  const tact = await until('trigger activation', () => ow.activations.get({ name: fired.activationId }).catch(() => null));
  assert.deepStrictEqual(tact.response.result, { n: 1 });
  const lines = tact.logs.map(l => JSON.parse(l));
  assert.deepStrictEqual(lines.map(l => l.rule).sort(), ['guest/evt-echo', 'guest/evt-sys']);
  for (const l of lines) {
    assert.strictEqual(l.success, true);
    const a = await until('rule activation', () => ow.activations.get({ name: l.activationId }).catch(() => null));
    assert.strictEqual(a.response.result.n, 1);
    assert.strictEqual(a.response.result.from, 'trigger', 'trigger parameters reach the action');
  }
  // Disable both: firing records nothing (204).
  await ow.rules.disable({ name: 'evt-echo' });
  await ow.rules.disable({ name: 'evt-sys' });
  assert.strictEqual((await ow.rules.get({ name: 'evt-echo' })).status, 'inactive');
  const none = await ow.triggers.invoke({ name: 'evt' });
  assert.ok(!none || !none.activationId, 'no active rule: no activation');
  await ow.rules.enable({ name: 'evt-echo' });
  assert.strictEqual((await ow.rules.get({ name: 'evt-echo' })).status, 'active');
  assert.deepStrictEqual(await ow.rules.list({ count: true }), { rules: 2 });
  assert.deepStrictEqual(await ow.triggers.list({ count: true }), { triggers: 1 });
  await fails(ow.triggers.invoke({ name: 'ghost' }), 404, 'firing a missing trigger');
  await fails(ow.rules.create({ name: 'evt-echo', trigger: 'evt', action: 'tools/echo' }), 409, 'rule exists');
}

async function alarms() {
  await ow.triggers.create({ name: 'tick' });
  await ow.rules.create({ name: 'tick-echo', trigger: 'tick', action: '/whisk.system/utils/echo' });
  await fails(ow.feeds.create({ name: '/whisk.system/alarms/alarm', trigger: 'tick', params: { cron: '61 * * * *' } }), 502, 'cron that does not parse');
  const t0 = Date.now();
  await ow.feeds.create({ name: '/whisk.system/alarms/alarm', trigger: 'tick', params: { cron: '* * * * * *', trigger_payload: { beat: true } } });
  const read = await ow.feeds.get({ name: '/whisk.system/alarms/alarm', trigger: 'tick' });
  assert.strictEqual(read.response.result.config.cron, '* * * * * *');
  await ow.triggers.create({ name: 'later' });
  await ow.rules.create({ name: 'later-echo', trigger: 'later', action: '/whisk.system/utils/echo' });
  await ow.feeds.create({ name: '/whisk.system/alarms/once', trigger: 'later', params: { date: new Date(Date.now() + 2000).toISOString(), trigger_payload: { once: 1 } } });
  await fails(ow.feeds.create({ name: '/whisk.system/alarms/once', trigger: 'later', params: { date: 'tomorrow' } }), 502, 'a date that does not parse');
  // Every second, the cron alarm fires `tick`; once, `later`.
  const ticks = await until('three alarm firings', async () => {
    const l = await ow.activations.list({ name: 'tick', limit: 20 });
    return l.length >= 3 ? l : null;
  }, 20000);
  for (const a of ticks) assert.ok(a.start >= t0 - 1000, 'fired after the feed was created');
  const once = await until('the once alarm', async () => {
    const l = await ow.activations.list({ name: 'later', docs: true });
    return l.length >= 1 ? l : null;
  });
  assert.deepStrictEqual(once[0].response.result, { once: 1 });
  const doc = await ow.activations.get({ name: ticks[0].activationId });
  assert.deepStrictEqual(doc.response.result, { beat: true });
  // Pause stops it; delete detaches it.
  await ow.feeds.delete({ name: '/whisk.system/alarms/alarm', trigger: 'tick' });
  await sleep(2000);
  const before = (await ow.activations.list({ name: 'tick', count: true })).activations;
  await sleep(2100);
  const after = (await ow.activations.list({ name: 'tick', count: true })).activations;
  assert.strictEqual(after, before, 'a deleted alarm fires no more');
}

async function webActions() {
  const base = `${apihost}/api/v1/web/guest`;
  let r = await fetch(`${base}/tools/echo.json?x=1`);
  assert.strictEqual(r.status, 200);
  let j = await r.json();
  assert.strictEqual(j.x, '1');
  assert.strictEqual(j.__ow_method, 'get');
  assert.strictEqual(j.p, 'pkg');
  r = await fetch(`${base}/tools/echo.text/__ow_headers/x-test`, { headers: { 'x-test': 'hi' } });
  assert.strictEqual(await r.text(), 'hi', 'the path projects into the result');
  r = await fetch(`${base}/tools/echo.json`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ y: [1, 2] }) });
  j = await r.json();
  assert.deepStrictEqual(j.y, [1, 2]);
  assert.strictEqual(j.__ow_method, 'post');
  r = await fetch(`${base}/tools/echo.http`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ statusCode: 201, headers: { 'x-made-by': 'ditto' }, body: '<b>hi</b>' }) });
  assert.strictEqual(r.status, 201);
  assert.strictEqual(r.headers.get('x-made-by'), 'ditto');
  assert.strictEqual(await r.text(), '<b>hi</b>');
  r = await fetch(`${base}/tools/echo.html?html=%3Cp%3Ex%3C/p%3E`);
  assert.strictEqual(r.headers.get('content-type').split(';')[0], 'text/html');
  assert.strictEqual(await r.text(), '<p>x</p>');
  r = await fetch(`${base}/tools/echo.text?text=plain`);
  assert.strictEqual(await r.text(), 'plain');
  assert.strictEqual(r.headers.get('access-control-allow-origin'), '*', 'CORS');
  r = await fetch(`${base}/tools/echo.json`, { method: 'OPTIONS' });
  assert.strictEqual(r.status, 200);
  assert.ok(r.headers.get('access-control-allow-methods').includes('POST'));
  // final: request parameters may not override the action's.
  await ow.actions.create({ name: 'fixed', action: wasm, kind: 'wasm', params: { who: 'owner' }, annotations: { 'web-export': true, final: true } });
  r = await fetch(`${base}/default/fixed.json?who=stranger`);
  assert.strictEqual(r.status, 400);
  r = await fetch(`${base}/default/fixed.json`);
  assert.strictEqual((await r.json()).who, 'owner');
  // raw-http: the body and query arrive unparsed.
  await ow.actions.create({ name: 'raw', action: wasm, kind: 'wasm', annotations: { 'web-export': true, 'raw-http': true } });
  r = await fetch(`${base}/default/raw.json?a=b`, { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: 'text body' });
  j = await r.json();
  assert.deepStrictEqual([j.__ow_query, j.__ow_body, j.__ow_path, j.__ow_method], ['a=b', 'text body', '', 'put']);
  // With .text the rest of the path projects into the result: here, __ow_path itself.
  r = await fetch(`${base}/default/raw.text/__ow_method`, { method: 'DELETE' });
  assert.strictEqual(await r.text(), 'delete');
  // require-whisk-auth: a secret header, or valid credentials.
  await ow.actions.create({ name: 'secret', action: wasm, kind: 'wasm', annotations: { 'web-export': true, 'require-whisk-auth': 'sesame' } });
  assert.strictEqual((await fetch(`${base}/default/secret.json`)).status, 401);
  assert.strictEqual((await fetch(`${base}/default/secret.json`, { headers: { 'x-require-whisk-auth': 'sesame' } })).status, 200);
  await ow.actions.create({ name: 'authd', action: wasm, kind: 'wasm', annotations: { 'web-export': true, 'require-whisk-auth': true } });
  assert.strictEqual((await fetch(`${base}/default/authd.json`)).status, 401);
  r = await fetch(`${base}/default/authd.json`, { headers: { authorization: basic } });
  assert.strictEqual((await r.json()).__ow_user, 'guest');
  // Not exported, or missing: 404 with OpenWhisk's JSON error.
  await ow.actions.create({ name: 'hidden', action: wasm, kind: 'wasm' });
  for (const path of ['default/hidden.json', 'default/nothing.json', 'nopkg/x.json']) {
    r = await fetch(`${base}/${path}`);
    assert.strictEqual(r.status, 404, path);
    assert.ok((await r.json()).error, path);
  }
}

async function routes() {
  const created = await ow.routes.create({ relpath: '/hello', operation: 'GET', action: 'tools/echo', basepath: '/shop' });
  assert.ok(created.gwApiUrl.endsWith('/api/guest/shop'), created.gwApiUrl);
  await ow.routes.create({ relpath: '/books/{id}', operation: 'POST', action: 'tools/echo', basepath: '/shop' });
  const got = await ow.routes.get({ basepath: '/shop' });
  assert.strictEqual(got.apis.length, 1);
  assert.deepStrictEqual(Object.keys(got.apis[0].value.apidoc.paths).sort(), ['/books/{id}', '/hello']);
  let r = await fetch(`${created.gwApiUrl}/hello?x=2`);
  assert.strictEqual(r.status, 200);
  assert.strictEqual((await r.json()).x, '2');
  r = await fetch(`${created.gwApiUrl}/books/42`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"title":"t"}' });
  const j = await r.json();
  assert.deepStrictEqual([j.id, j.title], ['42', 't']);
  assert.strictEqual((await fetch(`${created.gwApiUrl}/books/42`)).status, 405, 'wrong verb');
  await fails(ow.routes.create({ relpath: '/x', operation: 'GET', action: 'hidden', basepath: '/shop' }), 400, 'route to an action that is not a web action');
  await fails(ow.routes.create({ relpath: '/x', operation: 'GET', action: 'missing', basepath: '/shop' }), 400, 'route to a missing action');
  await ow.routes.delete({ basepath: '/shop', relpath: '/hello' });
  assert.strictEqual((await fetch(`${created.gwApiUrl}/hello`)).status, 404);
  await ow.routes.delete({ basepath: '/shop' });
  assert.strictEqual((await ow.routes.list()).apis.length, 0);
}

async function smallThings() {
  const ns = await ow.namespaces.get();
  assert.ok(ns.actions.length >= 1 && ns.packages.length >= 1 && ns.triggers.length >= 1 && ns.rules.length >= 1);
  const r = await fetch(`${apihost}/api/v1/namespaces/_`, { headers: { authorization: basic } });
  assert.strictEqual((await r.json()).name, 'guest');
  const summaries = await ow.activations.list({ limit: 5 });
  assert.ok(summaries.length === 5);
  for (const s of summaries) {
    assert.ok(typeof s.statusCode === 'number' && s.response === undefined && s.logs === undefined, 'summaries only');
  }
  const docs = await ow.activations.list({ limit: 2, docs: true });
  assert.ok(docs[0].response && docs[0].logs, 'docs=true: full records');
  const count = await ow.activations.list({ count: true });
  assert.ok(count.activations >= 5);
  assert.ok((await ow.actions.list({ count: true })).actions >= 5);
  // Every error is OpenWhisk's JSON.
  for (const [method, path, status] of [
    ['GET', '/api/v1/nothing/here', 404],
    ['PATCH', '/api/v1/namespaces/_/actions/x', 405],
    ['GET', '/api/v1/namespaces/_/actions?limit=many', 400],
    ['GET', '/api/v1/namespaces/_/activations?docs=maybe', 400],
  ]) {
    const res = await fetch(`${apihost}${path}`, { method, headers: { authorization: basic } });
    assert.strictEqual(res.status, status, `${method} ${path}`);
    const body = await res.json();
    assert.ok(typeof body.error === 'string' && typeof body.code === 'string', `${method} ${path}: JSON error`);
  }
  const big = await fetch(`${apihost}/api/v1/namespaces/_/triggers/evt`, { method: 'POST', headers: { authorization: basic, 'content-type': 'application/json' }, body: JSON.stringify({ pad: 'x'.repeat(5 << 20) }) });
  assert.strictEqual(big.status, 413);
  assert.ok((await big.json()).error);
  // Deleting: a package with force, a trigger, a rule.
  await ow.rules.delete({ name: 'evt-sys' });
  await fails(ow.rules.get({ name: 'evt-sys' }), 404, 'deleted rule');
  await ow.packages.delete({ name: 'tools-b' });
}

(async () => {
  await packages();
  await whiskSystem();
  await sequences();
  await triggersAndRules();
  await webActions();
  await routes();
  await alarms();
  await smallThings();
  console.log('ok');
})().catch(e => { console.error('FAILED:', e && (e.stack || e.message || e), e && e.error ? JSON.stringify(e.error) : ''); process.exit(1); });
