// The console in a real browser: Debian's Chromium, headless, driven by playwright-core,
// against a live aiocr (tests/console_browser.rs starts it and passes its address and the
// demo and admin passwords in the environment). One user's whole visit, step by step:
// sign in, see the balance, create a key, solve a fixture (the answer must be ddddocr's; a
// click-in-order and a math captcha too),
// see the usage chart count it, add a model and solve with it, an admin (signed in with the keyboard only) grants points
// and the user's balance changes, sign out. Every page is screenshot into
// $AIOCR_SCREENSHOTS (docs/console holds the committed ones).
//
// Throughout, the page must log no error (a Content-Security-Policy violation is one) and
// make no request to anywhere but the server.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = required('AIOCR_URL');
const DEMO_PASSWORD = required('AIOCR_DEMO_PASSWORD');
const ADMIN_PASSWORD = required('AIOCR_ADMIN_PASSWORD');
const SCREENSHOTS = resolve(process.env.AIOCR_SCREENSHOTS ?? '../../target/console-screenshots');
const FIXTURES = resolve('../fixtures/captcha');
const CHROMIUM = process.env.AIOCR_CHROMIUM ?? '/usr/bin/chromium';
/** The fixture the user solves (its ddddocr answer comes from the manifest). */
const FIXTURE = '0001.png';
/** Points the admin grants. */
const GRANT = 25;
/** The detection and slide fixtures, with ddddocr 1.6.1's answers. */
const MORE = resolve('../fixtures/ddddocr-more');
/** The click-in-order and math fixtures, with their truth. */
const BEYOND = resolve('../fixtures/beyond');
/** A math fixture the server reads right (its value is the manifest's). */
const MATH_FIXTURE = '0000.png';
/** What a detection and a slide cost (the server's defaults). */
const DETECT_COST = 5;
const SLIDE_COST = 1;

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (tests/console_browser.rs sets it)`);
  return value;
}

/** ddddocr's own models (scripts/setup.sh puts them there) and the custom-model fixtures. */
const MODELS = resolve(process.env.AIOCR_MODEL_DIR ?? '../../models');
const CUSTOM = resolve('../fixtures/custom-models');

/** ddddocr 1.6.1's answer through its import path for a custom-model variant and a fixture. */
function customAnswer(variant, file) {
  const rows = readFileSync(join(CUSTOM, 'manifest.tsv'), 'utf8').trim().split('\n').slice(1);
  return rows.map((line) => line.split('\t')).find((cols) => cols[0] === variant && cols[2] === file)[3];
}

/** ddddocr 1.6.1's answer (default model) for a fixture, from the manifest. */
function ddddocrAnswer(file) {
  const rows = readFileSync(join(FIXTURES, 'manifest.tsv'), 'utf8').trim().split('\n').slice(1);
  const row = rows.map((line) => line.split('\t')).find((cols) => cols[0] === file);
  assert.ok(row, `${file} is in the manifest`);
  return row[4];
}

/** The first click captcha and ddddocr's boxes. */
function ddddocrBoxes() {
  const rows = readFileSync(join(MORE, 'det', 'manifest.tsv'), 'utf8').trim().split('\n').slice(1);
  const cols = rows[0].split('\t');
  return [cols[0], JSON.parse(cols[5])];
}

/** The first slide pair of the plain match kind: files, mode and ddddocr's answer. */
function ddddocrSlide() {
  const rows = readFileSync(join(MORE, 'slide', 'manifest.tsv'), 'utf8').trim().split('\n').slice(1);
  const cols = rows.map((line) => line.split('\t')).find((row) => row[0] === 'match');
  return [cols[1], cols[2], 'match', JSON.parse(cols[5])];
}

/** A fixture's row of a beyond manifest (click or math), as {column: value}. */
function beyondRow(kind, file) {
  const [header, ...rows] = readFileSync(join(BEYOND, kind, 'manifest.tsv'), 'utf8').trim().split('\n');
  const names = header.split('\t');
  const cols = rows.map((line) => line.split('\t')).find((row) => file === undefined || row[0] === file);
  return Object.fromEntries(names.map((name, index) => [name, cols[index]]));
}

/** Everything a page did wrong: errors it logged, uncaught exceptions, foreign requests. */
function watch(page, problems, name) {
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`${name} console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`${name} exception: ${error.message}`));
  page.on('request', (request) => {
    const url = request.url();
    if (!url.startsWith(BASE) && !url.startsWith('blob:') && !url.startsWith('data:')) {
      problems.push(`${name} requested ${url}`);
    }
  });
}

async function shot(page, name, fullPage = true) {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage });
}

/** Waits until `predicate(arg)` is true in the page (the wait is bounded by Playwright). */
function until(page, predicate, arg) {
  return page.waitForFunction(predicate, arg, { polling: 100 });
}

/** Follows a link of the navigation and waits until its page is the one shown (the page
 *  changes on `hashchange`, after the click returns). */
async function go(page, link, route) {
  await page.getByRole('link', { name: link, exact: true }).click();
  await page.locator(`main[data-page="${route}"]`).waitFor();
}

async function headerPoints(page) {
  return Number(await page.locator('#balance').getAttribute('data-points'));
}

test('a user and an admin use the console', async (t) => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), 'aiocr-chromium-'));
  // A fresh profile; without the background-networking flags Chromium tries to reach
  // Google's services, which this closed network refuses.
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 800 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const problems = [];
  try {
    const user = await browser.newPage();
    watch(user, problems, 'user');
    let points = 0;
    let apiKey = '';

    await t.test('the console URL shows the sign-in page', async () => {
      await user.goto(`${BASE}/console/`);
      await user.locator('#signin-form').waitFor();
      assert.match(user.url(), /#\/signin$/);
      await shot(user, 'signin');
    });

    await t.test('the demo user signs in and sees the balance', async () => {
      await user.getByLabel('Username').fill('demo');
      await user.getByLabel('Password').fill(DEMO_PASSWORD);
      await user.getByRole('button', { name: 'Sign in' }).click();
      await until(user, () => (document.querySelector('#account-points')?.dataset.value ?? '') !== '');
      points = Number(await user.locator('#account-points').getAttribute('data-value'));
      assert.equal(points, 1000, 'the demo user starts with 1000 points');
      assert.equal(await headerPoints(user), 1000);
      assert.match(await user.locator('#who-name').textContent(), /^demo \(user\)$/);
      assert.equal(await user.locator('[data-admin]:visible').count(), 0, 'no admin links for a user');
    });

    await t.test('the user creates an API key, shown once, that works', async () => {
      await user.getByRole('button', { name: 'Create a key' }).click();
      await user.locator('#key-value').filter({ hasText: /^[0-9a-f]{32}$/ }).waitFor();
      apiKey = await user.locator('#key-value').textContent();
      const answer = await fetch(`${BASE}/v2/user/point`, { headers: { Authorization: `Bearer ${apiKey}` } });
      assert.equal((await answer.json()).data.points, points, 'the key reads the same balance');
      assert.equal(await user.locator('#key-status').getAttribute('data-has-key'), 'true');
      await shot(user, 'account');
    });

    await t.test('the user replaces the key, then revokes it: each old key stops at once', async () => {
      const pointsWith = async (key) => (await fetch(`${BASE}/v2/user/point`, {
        headers: { Authorization: `Bearer ${key}` },
      })).status;
      user.once('dialog', (dialog) => dialog.accept());
      await user.getByRole('button', { name: 'Replace the key' }).click();
      await user.locator('#key-value').filter({ hasNotText: apiKey }).waitFor();
      const replaced = apiKey;
      apiKey = await user.locator('#key-value').textContent();
      assert.match(apiKey, /^[0-9a-f]{32}$/);
      assert.equal(await pointsWith(replaced), 401, 'the replaced key is refused');
      assert.equal(await pointsWith(apiKey), 200);
      user.once('dialog', (dialog) => dialog.accept());
      await user.getByRole('button', { name: 'Revoke the key' }).click();
      await user.locator('#key-status[data-has-key="false"]').waitFor();
      assert.ok(await user.locator('#key-shown').isHidden(), 'the key is no longer shown');
      assert.equal(await pointsWith(apiKey), 401, 'the revoked key is refused');
    });

    await t.test('the user solves a fixture: the answer is ddddocr\'s', async () => {
      await go(user, 'Try it', '/try');
      await user.locator('#try-file-file').setInputFiles(join(FIXTURES, FIXTURE));
      await user.locator('.drop img:not([hidden])').waitFor();
      await user.getByRole('button', { name: 'Solve' }).click();
      await user.locator('#try-result[data-status]').waitFor();
      assert.equal(await user.locator('#try-result').getAttribute('data-status'), 'done');
      assert.equal(await user.locator('#try-result').textContent(), ddddocrAnswer(FIXTURE));
      const confidence = Number(await user.locator('#try-confidence').textContent());
      assert.ok(confidence > 0 && confidence <= 1, `confidence ${confidence}`);
      assert.match(await user.locator('#try-time').textContent(), /^\d+(\.\d+)? m?s$/);
      points -= 1;
      await until(user, (expected) => Number(document.querySelector('#balance').dataset.points) === expected, points);
      await shot(user, 'try');
    });

    await t.test('an image can be dropped or pasted onto the page', async () => {
      const previewOf = () => user.locator('.drop[data-index="0"] img').getAttribute('src');
      const before = await previewOf();
      // What the browser dispatches when a file is dropped, and when an image is pasted.
      await user.evaluate(async () => {
        const blob = await (await fetch('sample.png')).blob();
        const dropped = new DataTransfer();
        dropped.items.add(new File([blob], 'dropped.png', { type: 'image/png' }));
        document.querySelector('.drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dropped, bubbles: true, cancelable: true }));
      });
      await user.locator('.drop img[alt^="dropped.png"]').waitFor();
      assert.notEqual(await previewOf(), before);
      await user.evaluate(async () => {
        const blob = await (await fetch('sample.png')).blob();
        const pasted = new DataTransfer();
        pasted.items.add(new File([blob], 'pasted.png', { type: 'image/png' }));
        document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: pasted, bubbles: true }));
      });
      await user.locator('.drop img[alt^="pasted.png"]').waitFor();
    });

    await t.test('detection boxes and the slide position are drawn from the contract\'s shapes', async () => {
      // The try page offers the kinds /openapi.json lists (all three on this server); their
      // drawing is checked here on the documented answer shapes, their answers below.
      const drawn = await user.evaluate(async () => {
        const { KINDS, availableKinds } = await import('./kinds.js');
        const description = await (await fetch('/openapi.json')).json();
        // A blank 150x50 image, so that only the drawing is coloured.
        const blank = Object.assign(document.createElement('canvas'), { width: 150, height: 50 });
        blank.getContext('2d').fillStyle = '#fff';
        blank.getContext('2d').fillRect(0, 0, 150, 50);
        const image = new Image();
        image.src = URL.createObjectURL(await new Promise((done) => blank.toBlob(done)));
        await image.decode();
        const red = (canvas, x, y) => {
          const [r, g, b] = canvas.getContext('2d').getImageData(x, y, 1, 1).data;
          return r > 150 && g < 60 && b < 120;
        };
        const kind = (id) => KINDS.find((k) => k.id === id);
        const boxes = document.createElement('canvas');
        kind('detect').draw(boxes, [image], [[10, 10, 60, 40]]);
        const slide = document.createElement('canvas');
        kind('slide').draw(slide, [image, image], { target: [30, 0], target_x: 30, target_y: 0 });
        const both = { paths: { '/v2/decode/upload': { post: {} }, '/v2/decode/slide': { post: {} } } };
        return {
          here: availableKinds(description).map((k) => k.id),
          withSlide: availableKinds(both).map((k) => k.id),
          box: [red(boxes, 10, 25), red(boxes, 35, 25), red(boxes, 60, 25)],
          line: [red(slide, 30, 25), red(slide, 80, 25)],
          size: [boxes.width, boxes.height],
          text: [kind('detect').describe([[1, 2, 3, 4]]), kind('slide').describe({ target_x: 7, target_y: 0 })],
        };
      });
      assert.deepEqual(drawn.here, ['ocr', 'detect', 'click', 'slide']);
      assert.deepEqual(drawn.withSlide, ['ocr', 'slide']);
      assert.deepEqual(drawn.box, [true, false, true], 'the box edges, not its inside');
      assert.deepEqual(drawn.line, [true, false], 'a line at target_x');
      assert.deepEqual(drawn.text, ['1 box: [[1,2,3,4]]', 'x = 7, y = 0']);
    });

    await t.test('the usage chart and the uploads list count it', async () => {
      await go(user, 'Usage', '/usage');
      await until(user, () => document.querySelector('#usage-chart')?.dataset.todayUploads === '1');
      assert.equal(await user.locator('#usage-chart canvas').count() > 0, true, 'uPlot drew');
      assert.equal(await user.locator('#usage-chart').getAttribute('data-today-points'), '1');
      const first = user.locator('#uploads-table tbody tr').first();
      await first.waitFor();
      assert.equal(await first.locator('td.answer').textContent(), ddddocrAnswer(FIXTURE));
      assert.equal(await first.locator('td[data-status]').textContent(), 'done');
      await shot(user, 'usage');
    });

    await t.test('the user solves a click captcha: the boxes are ddddocr\'s', async () => {
      await go(user, 'Try it', '/try');
      await user.getByRole('radio', { name: 'Click (detection)' }).check();
      const [file, boxes] = ddddocrBoxes();
      await user.locator('#try-file-file').setInputFiles(join(MORE, 'det', file));
      await user.locator('.drop img:not([hidden])').waitFor();
      await user.getByRole('button', { name: 'Solve' }).click();
      await user.locator('#try-result[data-status]').waitFor();
      assert.equal(await user.locator('#try-result').getAttribute('data-status'), 'done');
      const plural = boxes.length === 1 ? '' : 'es';
      assert.equal(await user.locator('#try-result').textContent(),
        `${boxes.length} box${plural}: ${JSON.stringify(boxes)}`);
      points -= DETECT_COST;
      await until(user, (expected) => Number(document.querySelector('#balance').dataset.points) === expected, points);
      await shot(user, 'try-detect');
    });

    await t.test('the user solves a slide captcha: the position is ddddocr\'s', async () => {
      await user.getByRole('radio', { name: 'Slide' }).check();
      const [target, background, mode, answer] = ddddocrSlide();
      await user.locator('#try-file-target').setInputFiles(join(MORE, 'slide', target));
      await user.locator('#try-file-background').setInputFiles(join(MORE, 'slide', background));
      await user.getByLabel('Mode').selectOption(mode);
      await user.getByRole('button', { name: 'Solve' }).click();
      await user.locator('#try-result[data-status]').waitFor();
      assert.equal(await user.locator('#try-result').getAttribute('data-status'), 'done');
      assert.equal(await user.locator('#try-result').textContent(),
        `x = ${answer.target_x}, y = ${answer.target_y}`);
      points -= SLIDE_COST;
      await until(user, (expected) => Number(document.querySelector('#balance').dataset.points) === expected, points);
      await shot(user, 'try-slide');
    });

    await t.test('the user solves a click-in-order captcha: every click in its truth box, drawn numbered', async () => {
      await user.getByRole('radio', { name: 'Click in order' }).check();
      const row = beyondRow('click');
      const truth = JSON.parse(row.truth_boxes_in_order);
      await user.locator('#try-file-file').setInputFiles(join(BEYOND, 'click', row.file));
      await user.locator('.drop[data-index="0"] img:not([hidden])').waitFor();
      await user.locator('#try-option-hint').fill(row.hint);
      await user.getByRole('button', { name: 'Solve' }).click();
      await user.locator('#try-result[data-status]').waitFor();
      assert.equal(await user.locator('#try-result').getAttribute('data-status'), 'done');
      const text = await user.locator('#try-result').textContent();
      const clicks = JSON.parse(text.slice(text.indexOf(': ') + 2));
      assert.equal(clicks.length, truth.length, text);
      clicks.forEach(([x, y], index) => {
        const [x1, y1, x2, y2] = truth[index];
        assert.ok(x1 <= x && x <= x2 && y1 <= y && y <= y2, `${text} vs ${row.truth_boxes_in_order}`);
      });
      assert.ok(await user.locator('#try-view canvas').isVisible(), 'the clicks are drawn');
      points -= DETECT_COST;
      await until(user, (expected) => Number(document.querySelector('#balance').dataset.points) === expected, points);
      await shot(user, 'try-click');
    });

    await t.test('the user solves a math captcha: its value', async () => {
      await user.getByRole('radio', { name: 'Text', exact: true }).check();
      const row = beyondRow('math', MATH_FIXTURE);
      await user.locator('#try-file-file').setInputFiles(join(BEYOND, 'math', MATH_FIXTURE));
      await user.locator('.drop[data-index="0"] img:not([hidden])').waitFor();
      await user.locator('#try-option-math').check();
      await user.getByRole('button', { name: 'Solve' }).click();
      await user.locator('#try-result[data-status]').waitFor();
      assert.equal(await user.locator('#try-result').getAttribute('data-status'), 'done');
      assert.equal(await user.locator('#try-result').textContent(), row.value, `${row.text}`);
      points -= 1;
      await until(user, (expected) => Number(document.querySelector('#balance').dataset.points) === expected, points);
      await shot(user, 'try-math');
    });

    const admin = await browser.newPage();
    watch(admin, problems, 'admin');

    await t.test('an admin signs in with the keyboard alone', async () => {
      await admin.goto(`${BASE}/console/`);
      await admin.locator('#signin-form').waitFor();
      // The page puts the focus on the username field.
      await admin.keyboard.type('admin');
      await admin.keyboard.press('Tab');
      await admin.keyboard.type(ADMIN_PASSWORD);
      await admin.keyboard.press('Enter');
      await admin.locator('#who-name', { hasText: 'admin (admin)' }).waitFor();
      assert.equal(await admin.locator('[data-admin]:visible').count(), 3);
    });

    await t.test('the admin finds the demo user', async () => {
      await go(admin, 'Users', '/admin/users');
      await admin.getByLabel('Name starts with').fill('dem');
      await admin.getByRole('button', { name: 'Find' }).click();
      await admin.locator('#users-table[data-query="dem"]').waitFor();
      const row = admin.locator('#users-table tr[data-username="demo"]');
      assert.equal(await admin.locator('#users-table tbody tr').count(), 1);
      assert.equal(await row.locator('td[data-points]').getAttribute('data-points'), String(points));
      await shot(admin, 'admin-users');
    });

    await t.test('the admin grants points and the user sees the balance change', async () => {
      await go(admin, 'Points', '/admin/points');
      await admin.getByLabel('Username').fill('demo');
      await admin.getByLabel(/^Points/).fill(String(GRANT));
      await admin.getByLabel('Reason').fill('browser test');
      await admin.getByRole('button', { name: 'Grant' }).click();
      await admin.locator('#points-done[data-points]').waitFor();
      points += GRANT;
      assert.equal(await admin.locator('#points-done').getAttribute('data-points'), String(points));
      await shot(admin, 'admin-points');
      // The user's tab polls the balance: the header changes by itself.
      await until(user, (expected) => Number(document.querySelector('#balance').dataset.points) === expected, points);
      await go(user, 'Account', '/account');
      await until(user, (expected) => Number(document.querySelector('#account-points')?.dataset.value) === expected, points);
    });

    await t.test('the admin sees the server state from the metrics', async () => {
      await go(admin, 'Server', '/admin/server');
      await until(admin, () => Number(document.querySelector('#server-done')?.textContent) >= 1);
      await until(admin, () => document.querySelector('#server-rate')?.textContent !== '–');
      assert.match(await admin.locator('#server-queue').textContent(), /^\d+ of [\d,]+$/);
      assert.equal(await admin.locator('#server-nodes tbody tr').count(), 1);
      await shot(admin, 'admin-server');
    });

    await t.test('the API reference is rendered from /openapi.json', async () => {
      await go(user, 'API reference', '/reference');
      await user.locator('#reference-toc li').first().waitFor();
      const operations = await user.locator('#reference-body section.operation').count();
      const doc = await (await fetch(`${BASE}/openapi.json`)).json();
      const expected = Object.values(doc.paths).reduce((sum, item) => sum + Object.keys(item).length, 0);
      assert.equal(operations, expected, 'one section per operation');
      await user.getByLabel('Filter').fill('uploads');
      assert.ok(await user.locator('#op-get--v2-user-uploads').isVisible());
      assert.ok(await user.locator('#op-get--health').isHidden());
      await user.getByLabel('Filter').fill('');
      // The whole reference is many screens long: one operation's screen.
      await user.locator('[data-target="op-post--v2-decode-upload"]').click();
      assert.ok(await user.locator('#op-post--v2-decode-upload h2').evaluate((h) => h === document.activeElement));
      await shot(user, 'reference', false);
    });

    await t.test('the user adds a model, solves with it in Try it, sees its numbers, removes it', async () => {
      await go(user, 'Models', '/models');
      await user.locator('#models-usage').filter({ hasText: /^You keep 0 of/ }).waitFor();
      await user.getByLabel('Name').fill('mine');
      await user.getByLabel('ONNX file').setInputFiles(join(MODELS, 'common_old.onnx'));
      await user.getByLabel('charsets.json').setInputFiles(join(CUSTOM, 'permuted-charset', 'charsets.json'));
      assert.ok(await user.locator('#models-public').isHidden(), 'only admins make models public');
      await user.getByRole('button', { name: 'Add the model' }).click();
      await user.locator('#models-table td[data-name="mine"]').waitFor();
      await go(user, 'Try it', '/try');
      await user.locator('#try-option-model').fill('mine');
      await user.locator('#try-file-file').setInputFiles(join(FIXTURES, FIXTURE));
      await user.locator('.drop img:not([hidden])').waitFor();
      await user.getByRole('button', { name: 'Solve' }).click();
      await user.locator('#try-result[data-status]').waitFor();
      assert.equal(await user.locator('#try-result').textContent(), customAnswer('permuted-charset', FIXTURE));
      points -= 1;
      await until(user, (expected) => Number(document.querySelector('#balance').dataset.points) === expected, points);
      await go(user, 'Models', '/models');
      await user.locator('#models-table td[data-requests="1"]').waitFor();
      await shot(user, 'models');
      user.once('dialog', (dialog) => dialog.accept());
      await user.getByRole('button', { name: 'Remove' }).click();
      await user.locator('#models-empty:not([hidden])').waitFor();
    });

    await t.test('readable at 360 px: no page is wider than the screen', async () => {
      await user.setViewportSize({ width: 360, height: 740 });
      // Each page once its content is in (what arrives last).
      const loaded = {
        '#/account': '#key-status[data-has-key]',
        '#/try': '.drop input[type=file]',
        '#/usage': '#uploads-table tbody tr',
        '#/models': '#models-usage',
        '#/reference': '#reference-body section.operation',
      };
      for (const [route, selector] of Object.entries(loaded)) {
        await user.evaluate((hash) => { location.hash = hash; }, route);
        await user.locator(`main[data-page="${route.slice(1)}"] ${selector}`).first().waitFor();
        const width = await user.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(width <= 360, `${route} is ${width} px wide`);
      }
    });

    await t.test('at 360 px, a first try with the built-in sample', async () => {
      await user.evaluate(() => { location.hash = '#/try'; });
      await user.getByRole('button', { name: 'Use a sample image' }).click();
      await user.locator('.drop img[alt^="sample.png"]').waitFor();
      await user.getByRole('button', { name: 'Solve' }).click();
      await user.locator('#try-result[data-status]').waitFor();
      // The sample is fixture 0001.png (a unit test of src/server/console.rs checks it).
      assert.equal(await user.locator('#try-result').textContent(), ddddocrAnswer('0001.png'));
      const width = await user.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 360, `the answer is ${width} px wide`);
      await shot(user, 'try-360px');
    });

    await t.test('signing out forgets the token', async () => {
      await user.getByRole('button', { name: 'Sign out' }).click();
      await user.locator('#signin-form').waitFor();
      assert.ok(await user.locator('#who').isHidden());
      const stored = await user.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie]);
      assert.deepEqual(stored, [0, 0, ''], 'nothing kept outside the page\'s memory');
      await user.evaluate(() => { location.hash = '#/account'; });
      await until(user, () => location.hash === '#/signin' && document.querySelector('#signin-form') !== null);
    });

    await t.test('the pages logged no error and asked nothing of anyone else', () => {
      assert.deepEqual(problems, []);
    });
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
});
