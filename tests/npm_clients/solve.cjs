// Solves captcha images against aiocr with one of the captcha services' official JavaScript
// client libraries (npm, pinned in package-lock.json, unmodified), exactly as their users
// would; only the server address differs, set the way a user of each library would set it.
// Prints one line per image, `FILE<TAB>TEXT`, then `balance<TAB>AMOUNT` as the library reads
// it, then, after reporting the first answer as wrong through the library (where it has a
// report call), `reported<TAB>OK`.
//
// Usage: node solve.cjs CLIENT URL KEY FILE...
// CLIENT: anticaptcha | capmonster | 2captcha; anticaptcha-coordinates | 2captcha-coordinates
// take FILE HINT pairs (click captchas)

"use strict";

const fs = require("fs");
const path = require("path");

const base64Of = (file) => fs.readFileSync(file).toString("base64");
const say = (name, value) => process.stdout.write(`${name}\t${value}\n`);

// @antiadmin/anticaptchaofficial posts every call to https://api.anti-captcha.com/<method>
// with the axios module: a request interceptor on that axios sends them to `url` instead.
function anticaptchaClient(url, key) {
  const ac = require("@antiadmin/anticaptchaofficial");
  const libraryDir = path.dirname(require.resolve("@antiadmin/anticaptchaofficial"));
  const axios = require(require.resolve("axios", { paths: [libraryDir] }));
  axios.interceptors.request.use((config) => {
    config.url = config.url.replace("https://api.anti-captcha.com", url);
    return config;
  });
  ac.setAPIKey(key);
  ac.shutUp();
  // Its settings: the first poll after 0.1 s instead of 5 (aiocr answers in milliseconds).
  ac.settings.firstAttemptWaitingInterval = 0.1;
  ac.settings.normalWaitingInterval = 0.1;
  return ac;
}

async function anticaptcha(url, key, files) {
  const ac = anticaptchaClient(url, key);
  let firstTaskId = null;
  for (const file of files) {
    const text = await ac.solveImage(base64Of(file));
    say(file, text);
    firstTaskId ??= ac.session.taskId;
  }
  say("balance", await ac.getBalance());
  ac.session.taskId = firstTaskId;
  await ac.reportIncorrectImageCaptcha();
  say("reported", "OK");
}

// node-capmonster takes its host from the static field CapmonsterClient.hostUrl, read when a
// client is made. It has no report call.
async function capmonster(url, key, files) {
  const { ImageToTextTask } = require("node-capmonster");
  const { CapmonsterClient } = require("node-capmonster/dist/capmonster");
  CapmonsterClient.hostUrl = url;
  const client = new ImageToTextTask(key);
  for (const file of files) {
    const taskId = await client.createWithTask({ body: base64Of(file) });
    const solution = await client.joinTaskResult(taskId);
    say(file, solution.text);
  }
  say("balance", await client.getBalance());
  say("reported", "OK (this library has no report call)");
}

// @2captcha/captcha-solver reads its in.php and res.php addresses from the Solver's `in` and
// `res` getters: a subclass names this server's. Its polling interval: 100 ms instead of 5 s.
function twocaptchaSolver(url, key) {
  const { Solver } = require("@2captcha/captcha-solver");
  class ThisServer extends Solver {
    get in() {
      return `${url}/in.php`;
    }
    get res() {
      return `${url}/res.php`;
    }
  }
  return new ThisServer(key, 100);
}

async function twocaptcha(url, key, files) {
  const solver = twocaptchaSolver(url, key);
  const ids = [];
  for (const file of files) {
    const answer = await solver.imageCaptcha({ body: base64Of(file) });
    say(file, answer.data);
    ids.push(answer.id);
  }
  say("balance", await solver.balance());
  await solver.badReport(ids[0]);
  say("reported", "OK");
}

// Click captchas: FILE HINT pairs; prints `FILE<TAB>CLICKS` (JSON, as the library returns
// them). @antiadmin/anticaptchaofficial's solveImageToCoordinates (ImageToCoordinatesTask,
// the characters in its comment) and @2captcha/captcha-solver's coordinates (in.php's
// coordinatescaptcha=1 with textinstructions), their addresses set as above.
async function anticaptchaCoordinates(url, key, pairs) {
  const ac = anticaptchaClient(url, key);
  for (let i = 0; i < pairs.length; i += 2) {
    say(pairs[i], JSON.stringify(await ac.solveImageToCoordinates(base64Of(pairs[i]), pairs[i + 1])));
  }
}

async function twocaptchaCoordinates(url, key, pairs) {
  const solver = twocaptchaSolver(url, key);
  for (let i = 0; i < pairs.length; i += 2) {
    const answer = await solver.coordinates({ body: base64Of(pairs[i]), textinstructions: pairs[i + 1] });
    say(pairs[i], JSON.stringify(answer.data));
  }
}

const CLIENTS = {
  anticaptcha,
  capmonster,
  "2captcha": twocaptcha,
  "anticaptcha-coordinates": anticaptchaCoordinates,
  "2captcha-coordinates": twocaptchaCoordinates,
};

const [client, url, key, ...files] = process.argv.slice(2);
CLIENTS[client](url, key, files).catch((error) => {
  process.stderr.write(`${client}: ${error && error.stack ? error.stack : JSON.stringify(error)}\n`);
  process.exit(1);
});
