// The seed's journey by clicking, in Debian's Chromium, against a real alertflow server.
// Run by tests/it/web_e2e.rs, which starts the server and passes:
//   ALERTFLOW_URL     the server's base URL
//   ADMIN_PASSWORD    the password `serve` printed on its first start
//   FIXTURE           a real Alertmanager body to deliver
//   SCREENSHOTS       where to save a screenshot of each page (docs/screenshots to refresh them)
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const base = process.env.ALERTFLOW_URL;
const adminPassword = process.env.ADMIN_PASSWORD;
const fixture = readFileSync(process.env.FIXTURE, 'utf8');
const shots = process.env.SCREENSHOTS;
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox'],
});
let step = 'start';
let page;
const log = (what) => {
  step = what;
  console.log(`- ${what}`);
};

try {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(15000);
  const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`) });
  const text = (loc) => loc.textContent().then((t) => t.trim());
  const field = (label) => page.locator('label.field', { has: page.locator('.field-label', { hasText: label }) });

  async function signIn(name, password) {
    await page.fill('input[name=name]', name);
    await page.fill('input[name=password]', password);
    await page.click('button[type=submit]');
  }

  // 1. Sign in: a wrong password is refused on the form; the right one opens the app.
  log('sign in');
  await page.goto(base);
  await page.locator('text=Sign in to continue.').waitFor();
  await shot('01-sign-in');
  await signIn('admin', 'not the password');
  await page.locator('[role=alert]', { hasText: 'wrong user name or password' }).waitFor();
  await signIn('admin', adminPassword);
  await page.locator('h1', { hasText: 'Workflows' }).waitFor();

  // 2. Settings, API Keys: the server's complaint shows next to the name; create; delete asks.
  log('API keys');
  await page.click('nav >> text=Settings');
  await page.fill('input[name=key-name]', 'bad name');
  await page.click('text=Create key');
  await field('Key name').locator('.field-error', { hasText: 'invalid key name' }).waitFor();
  await page.fill('input[name=key-name]', 'ops');
  await page.click('text=Create key');
  await page.locator('[data-testid=new-key]', { hasText: 'afk_' }).waitFor();
  const keys = page.locator('table[aria-label="API keys"]');
  await keys.locator('tr', { hasText: 'ops' }).locator('text=never').waitFor();
  await page.fill('input[name=key-name]', 'spare');
  await page.click('text=Create key');
  const spare = keys.locator('tr', { hasText: 'spare' });
  await spare.locator('text=Delete').click();
  await page.locator('[role=dialog]', { hasText: 'Delete API key spare?' }).waitFor();
  await page.click('[role=dialog] >> text=Cancel');
  assert.equal(await spare.count(), 1, 'cancel keeps the key');
  await spare.locator('text=Delete').click();
  await page.click('[role=dialog] >> button.danger');
  await spare.waitFor({ state: 'detached' });
  await shot('02-api-keys');

  // Secrets and users.
  log('secrets and users');
  await page.click('.tabs >> text=Secrets');
  await page.fill('input[name=secret-name]', 'CHAT_TOKEN');
  await page.fill('input[name=secret-value]', 's3cret-value');
  await page.click('text=Save secret');
  await page.locator('table[aria-label=Secrets] >> text=CHAT_TOKEN').waitFor();
  await shot('03-secrets');
  await page.click('.tabs >> text=Users');
  await page.fill('input[name=user-name]', 'vera');
  await page.selectOption('select[name=user-role]', 'viewer');
  await page.fill('input[name=user-password]', 'short');
  await page.click('text=Create user');
  await field('Password').locator('.field-error', { hasText: 'at least 8 characters' }).waitFor();
  await page.fill('input[name=user-password]', 'viewer-password');
  await page.click('text=Create user');
  await page.locator('table[aria-label=Users] tr[data-user=vera]').waitFor();
  await shot('04-users');

  // 3. Workflows, New Workflow: a name and the Prometheus trigger.
  log('new workflow');
  await page.click('nav >> text=Workflows');
  await page.click('text=New Workflow');
  await page.fill('input[name=workflow-name]', 'Disk Full');
  await page.check('input[value=prometheus]');
  await page.click('[role=dialog] >> text=Create');
  await page.locator('[role=dialog] .field-error', { hasText: 'lowercase' }).waitFor();
  await page.fill('input[name=workflow-name]', 'disk-full');
  await shot('05-new-workflow');
  await page.click('[role=dialog] >> text=Create');
  await page.waitForURL(`${base}/workflows/disk-full`);

  // 4. The builder: the trigger panel gives the key value, the URL and the receiver block.
  log('trigger panel');
  const panel = page.locator('[data-testid=trigger-panel]');
  await panel.waitFor();
  await page.selectOption('select[name=api-key]', 'ops');
  const keyValue = page.locator('[data-testid=key-value]');
  await page.waitForFunction(() => document.querySelector('[data-testid=key-value]')?.textContent?.includes('•'));
  await panel.locator('button', { hasText: 'Show' }).click();
  const apiKey = await text(keyValue);
  assert.match(apiKey, /^afk_/);
  const webhookUrl = await text(page.locator('[data-testid=webhook-url]'));
  assert.equal(webhookUrl, `${base}/hooks/disk-full`);
  const receiver = await text(page.locator('[data-testid=receiver-block]'));
  assert.ok(receiver.includes(`url: '${webhookUrl}?x-api-key=${apiKey}'`), receiver);
  assert.ok(receiver.includes('send_resolved: true') && receiver.includes('max_alerts: 0'), receiver);
  await shot('06-builder-trigger');
  assert.ok(await page.locator('button', { hasText: 'Save' }).isDisabled(), 'nothing to save without a step');

  // Add an action: unconfigured, it is marked and blocks saving until its URL is set.
  log('compose');
  await page.fill('.library .search', 'http');
  await page.click('.library-item >> text=http.request');
  const httpNode = page.locator('.react-flow__node[data-id=http_request_1]');
  await httpNode.locator('.mark').waitFor();
  assert.ok(await page.locator('button', { hasText: 'Save' }).isDisabled(), 'an unconfigured node blocks saving');
  await page.locator('text=Configure http_request_1 first.').waitFor();
  // A template naming a step that does not exist: the server refuses it, and says where.
  await page.fill('input[name=url]', `${base}/healthz?about={{ steps.nope.output }}`);
  await httpNode.locator('.mark').waitFor({ state: 'detached' });
  await page.click('button:has-text("Save")');
  await page.locator('.save-status', { hasText: 'steps[0].with.url' }).waitFor();
  await field('url').locator('.field-error').waitFor();
  await httpNode.locator('.mark').waitFor();
  // Fixed with a name from the suggestions.
  await page.fill('input[name=url]', `${base}/healthz?alert=`);
  await page.click('button[aria-label="Insert a name into url"]');
  await page.click('[role=option] >> text=trigger.commonLabels.alertname');
  assert.equal(await page.inputValue('input[name=url]'), `${base}/healthz?alert={{ trigger.commonLabels.alertname }}`);
  await shot('07-builder-step');

  // A second action after the first, then a third removed with the Delete key.
  await page.fill('.library .search', '');
  await page.click('.library-item >> text=transform');
  await page.fill('textarea[name=jq]', '{status, alerts: (.alerts | length)}');
  await page.click('.library-item >> text=wait');
  const waitNode = page.locator('.react-flow__node[data-id=wait_1]');
  await waitNode.waitFor();
  await waitNode.click();
  await page.keyboard.press('Delete');
  await waitNode.waitFor({ state: 'detached' });
  // Connect the trigger straight to the transform: it no longer waits for the request.
  // The graph re-fits when nodes come and go: let it come to rest before dragging.
  const settled = async () => {
    let last = '';
    for (;;) {
      const now = await page.$eval('.react-flow__viewport', (el) => el.style.transform);
      if (now === last) return;
      last = now;
      await page.waitForTimeout(250);
    }
  };
  await page.click('.react-flow__controls-fitview');
  await settled();
  const from = page.locator('.react-flow__node[data-id=__trigger__] .react-flow__handle-bottom');
  const to = page.locator('.react-flow__node[data-id=transform_1] .react-flow__handle-top');
  await from.dragTo(to);
  await page.locator('[aria-label="Edge from __trigger__ to transform_1"]').waitFor();
  // Zoom out: the viewport's scale shrinks.
  const scale = () => page.$eval('.react-flow__viewport', (el) => new DOMMatrix(getComputedStyle(el).transform).a);
  const before = await scale();
  await page.click('.react-flow__controls-zoomout');
  await page.waitForFunction((b) => new DOMMatrix(getComputedStyle(document.querySelector('.react-flow__viewport')).transform).a < b, before);
  await page.click('.react-flow__controls-fitview');

  log('save');
  await page.click('button:has-text("Save")');
  await page.locator('.save-status', { hasText: 'Saved version 1.' }).waitFor();

  // The code view shows the document the CLI applies, and edits it.
  log('code view');
  await page.click('button:has-text("Code")');
  const yaml = page.locator('textarea[aria-label="Workflow YAML"]');
  const source = await yaml.inputValue();
  assert.ok(source.includes('name: disk-full') && source.includes('uses: http.request') && source.includes('needs: []'), source);
  assert.ok(source.includes('api_keys:') && source.includes('- ops'), source);
  await yaml.fill(source.replace('name: disk-full', 'name: disk-full\ndescription: Disk is filling up'));
  await shot('08-builder-code');
  await page.click('button:has-text("Graph")');
  await page.locator('.react-flow__pane').click({ position: { x: 30, y: 30 } });
  assert.equal(await page.inputValue('input[name=description]'), 'Disk is filling up');
  await page.click('button:has-text("Save")');
  await page.locator('.save-status', { hasText: 'Saved version 2.' }).waitFor();

  // The real delivery, with the key and URL read off the panel; then a copy and a wrong key.
  log('webhook delivery');
  const deliver = (key) =>
    fetch(`${webhookUrl}?x-api-key=${key}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: fixture });
  let resp = await deliver(apiKey);
  assert.equal(resp.status, 202);
  const accepted = await resp.json();
  assert.equal(accepted.outcome, 'started');
  resp = await deliver(apiKey);
  assert.equal((await resp.json()).outcome, 'duplicate');
  resp = await deliver('afk_wrong');
  assert.equal(resp.status, 401);

  // 5. Executions: the counter and the row arrive without a reload.
  log('executions');
  await page.click('nav >> text=Executions');
  await page.locator('.counter[data-status=succeeded] .count', { hasText: '1' }).waitFor();
  const row = page.locator(`tr[data-execution="${accepted.executions[0]}"]`);
  await row.locator('text=succeeded').waitFor();
  assert.ok((await text(row)).includes('disk-full v2'));
  await shot('09-executions');
  await page.selectOption('select[name=status]', 'failed');
  await page.locator('text=No executions match.').waitFor();
  await page.selectOption('select[name=status]', '');
  await row.locator('a').click();

  log('execution detail');
  await page.locator('[aria-label=Steps] tr[data-step=http_request_1]', { hasText: 'succeeded' }).waitFor();
  const stepRow = await text(page.locator('tr[data-step=http_request_1]'));
  assert.match(stepRow, /\d{2}:\d{2}:\d{2}\.\d{3}/, 'times to the millisecond');
  await page.locator('.react-flow__node[data-id=http_request_1] [data-status=succeeded]').waitFor();
  await page.click('tr[data-step=http_request_1]');
  await page.locator('.step-detail', { hasText: '"status": 200' }).waitFor();
  await shot('10-execution');
  await page.click('.tabs >> text=Alert Body');
  assert.equal(await page.locator('[data-testid=alert-body]').textContent(), fixture, 'the body as received');
  await shot('11-alert-body');
  const detailUrl = page.url();
  await page.click('button:has-text("Replay")');
  await page.waitForURL((u) => u.href !== detailUrl && u.pathname.startsWith('/executions/'));
  await page.locator('.facts', { hasText: 'replay of' }).waitFor();
  await page.locator('.facts .badge', { hasText: 'succeeded' }).waitFor();

  // Cancel: a manual workflow that waits, started from the builder's Run button.
  log('run and cancel');
  const applied = await page.evaluate(async () => {
    const s = await (await fetch('/api/v1/session')).json();
    const r = await fetch('/api/v1/workflows', {
      method: 'POST',
      headers: { 'content-type': 'application/yaml', 'x-csrf-token': s.csrf },
      body: 'name: slow\ntrigger: {type: manual}\nsteps:\n  - {id: pause, uses: wait, with: {duration: 1h}}\n',
    });
    return r.status;
  });
  assert.equal(applied, 201);
  await page.goto(`${base}/workflows/slow`);
  await page.click('button:has-text("Run")');
  await page.locator('.facts .badge', { hasText: 'waiting' }).waitFor();
  await page.click('button:has-text("Cancel")');
  await page.locator('.facts .badge', { hasText: 'cancelled' }).waitFor();

  // 6. Events: every delivery and what became of it.
  log('events');
  await page.click('nav >> text=Events');
  await page.locator('tr[data-outcome=started]').waitFor();
  await page.locator('tr[data-outcome=duplicate]', { hasText: 'same notification' }).waitFor();
  await page.locator('tr[data-outcome=rejected]', { hasText: '401' }).waitFor();
  await shot('12-events');

  // A lost session returns to sign-in and keeps the unsaved graph.
  log('lost session');
  await page.goto(`${base}/workflows/disk-full`);
  await page.click('.library-item >> text=fail');
  await page.fill('[name=message]', 'stop here');
  await context.clearCookies();
  await page.click('button:has-text("Save")');
  await page.waitForURL(/\/signin\?next=/);
  await signIn('admin', adminPassword);
  await page.waitForURL(`${base}/workflows/disk-full`);
  await page.locator('.react-flow__node[data-id=fail_1]').waitFor();
  await page.locator('text=Unsaved changes restored.').waitFor();
  await page.click('button:has-text("Discard")');
  await page.locator('.react-flow__node[data-id=fail_1]').waitFor({ state: 'detached' });
  await page.click('button:has-text("Sign out")');
  await page.locator('text=Sign in to continue.').waitFor();

  // Roles: a viewer reads but cannot save, and the server refuses when asked directly.
  log('viewer');
  await signIn('vera', 'viewer-password');
  await page.locator('.who', { hasText: 'vera' }).waitFor();
  await page.goto(`${base}/workflows/disk-full`);
  await page.locator('text=Viewers cannot save.').waitFor();
  assert.ok(await page.locator('button', { hasText: 'Save' }).isDisabled());
  await page.locator('[data-testid=key-value]', { hasText: 'editors only' }).waitFor();
  await shot('13-viewer');
  const refused = await page.evaluate(async () => {
    const s = await (await fetch('/api/v1/session')).json();
    const save = await fetch('/api/v1/workflows', {
      method: 'POST',
      headers: { 'content-type': 'application/yaml', 'x-csrf-token': s.csrf },
      body: 'name: disk-full\ntrigger: {type: manual}\nsteps: [{id: a, uses: fail, with: {message: x}}]\n',
    });
    const users = await fetch('/api/v1/users');
    return [s.role, save.status, (await save.json()).code, users.status];
  });
  assert.deepEqual(refused, ['viewer', 403, 'forbidden', 403]);
  await page.goto(`${base}/workflows`);
  await page.locator('text=disk-full').first().waitFor();
  assert.equal(await page.locator('button', { hasText: 'New Workflow' }).count(), 0);
  console.log('journey: ok');
} catch (e) {
  console.error(`journey failed at "${step}" on ${page?.url()}: ${e.stack ?? e}`);
  await page?.screenshot({ path: join(shots, 'failure.png') }).catch(() => undefined);
  process.exitCode = 1;
} finally {
  await browser.close();
}
