//! What each connection sends: a plain request (any URL, method, headers, body file) or aiocr
//! scenarios (login, point, uploads, sync and async decodes) in a weighted mix. Request bytes
//! are formatted once at start; per request only slices are copied into the connection's
//! reused write buffer (the token header is per connection, the image part per image).

use crate::cache_ops;
use crate::stats::ErrorKind;
use crate::target::{auth_header, Target};
use anyhow::{bail, Context, Result};
use base64::Engine as _;
use serde::Deserialize;
use std::io::Write as _;
use std::path::Path;

/// Largest image read from the corpus (the server's default limit is 512 KiB; larger ones
/// are still sent, to test that limit, up to this).
const MAX_IMAGE_BYTES: u64 = 16 << 20;
/// Most images loaded from a corpus directory.
const MAX_IMAGES: usize = 100_000;
const MULTIPART_BOUNDARY: &str = "aiocrloadgen7f3a9c";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Plain,
    Login,
    Point,
    UploadBase64,
    Upload,
    DecodeSync,
    DecodeAsync,
    /// POST each corpus image as multipart field `file` to the URL itself, without logging in:
    /// for servers outside the aiocr API (e.g. ddddocr served by FastAPI at `/ocr`).
    PostImage,
    /// The JSON task protocol: `POST /createTask` with `clientKey` (the `--api-key`), done
    /// when it answers `ready` (else polled on `/v2/result` with the key).
    CreateTask,
    /// 2captcha v1: `POST /in.php` (multipart `file`, `method=post`, `key`), then polled on
    /// `/v2/result` with the key until done.
    InPhp,
    /// `POST /v2/decode/cached`: a batch of `--lookup-batch` hash lookups of the corpus's
    /// images (with `--upload-query`'s options).
    Cached,
    /// Sync decodes (`wait=1`) of which `--repeat-share` repeat the corpus's images and the
    /// rest send an image never sent before (a corpus PNG or JPEG made unique).
    Mixed,
    /// `POST /v2/decode/detect?wait=1` with a corpus image (click captchas).
    DetectSync,
    /// `POST /v2/decode/slide?wait=1` with a pair of `--slide-pairs` (match mode).
    SlideSync,
}

impl OpKind {
    pub const SCENARIOS: [OpKind; 13] = [
        OpKind::Login,
        OpKind::Point,
        OpKind::UploadBase64,
        OpKind::Upload,
        OpKind::DecodeSync,
        OpKind::DecodeAsync,
        OpKind::PostImage,
        OpKind::CreateTask,
        OpKind::InPhp,
        OpKind::Cached,
        OpKind::Mixed,
        OpKind::DetectSync,
        OpKind::SlideSync,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Plain => "plain",
            OpKind::Login => "login",
            OpKind::Point => "point",
            OpKind::UploadBase64 => "upload-base64",
            OpKind::Upload => "upload",
            OpKind::DecodeSync => "decode-sync",
            OpKind::DecodeAsync => "decode-async",
            OpKind::PostImage => "post-image",
            OpKind::CreateTask => "create-task",
            OpKind::InPhp => "in-php",
            OpKind::Cached => "cached",
            OpKind::Mixed => "mixed",
            OpKind::DetectSync => "detect-sync",
            OpKind::SlideSync => "slide-sync",
        }
    }

    pub fn parse(name: &str) -> Result<OpKind> {
        std::iter::once(OpKind::Plain)
            .chain(OpKind::SCENARIOS)
            .find(|kind| kind.name() == name)
            .with_context(|| format!("unknown scenario {name:?}"))
    }

    fn needs_image(self) -> bool {
        matches!(
            self,
            OpKind::UploadBase64
                | OpKind::Upload
                | OpKind::DecodeSync
                | OpKind::DecodeAsync
                | OpKind::PostImage
                | OpKind::CreateTask
                | OpKind::InPhp
                | OpKind::Cached
                | OpKind::Mixed
                | OpKind::DetectSync
        )
    }

    /// Sent with a bearer token from a login (or the `--api-key`).
    fn needs_auth(self) -> bool {
        !matches!(
            self,
            OpKind::Plain | OpKind::Login | OpKind::PostImage | OpKind::CreateTask | OpKind::InPhp
        )
    }

    /// Speaks another captcha service's protocol with the `--api-key`; its polls are `/v2`.
    pub fn is_compat(self) -> bool {
        matches!(self, OpKind::CreateTask | OpKind::InPhp)
    }
}

/// Parses `point=8,decode-sync=2` into kinds with weights.
pub fn parse_mix(text: &str) -> Result<Vec<(OpKind, u32)>> {
    let mut mix = Vec::new();
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
        let kind = OpKind::parse(name.trim())?;
        let weight: u32 = weight
            .trim()
            .parse()
            .with_context(|| format!("bad weight in mix part {part:?}"))?;
        if weight == 0 || weight > 1_000_000 {
            bail!("mix weight must be 1..=1000000 (got {weight} for {name})");
        }
        if kind == OpKind::Plain && !mix.is_empty() {
            bail!("plain cannot be mixed with aiocr scenarios");
        }
        mix.push((kind, weight));
    }
    if mix.is_empty() {
        bail!("empty mix");
    }
    Ok(mix)
}

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub password: String,
}

pub fn parse_user(text: &str) -> Result<User> {
    match text.split_once(':') {
        Some((name, password)) if !name.is_empty() => Ok(User {
            name: name.to_string(),
            password: password.to_string(),
        }),
        _ => bail!("a user is NAME:PASSWORD (got {text:?})"),
    }
}

pub fn read_users_file(path: &Path) -> Result<Vec<User>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read users file {}", path.display()))?;
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(parse_user)
        .collect()
}

/// Everything needed to build a workload.
#[derive(Clone)]
pub struct WorkloadSpec {
    pub mix: Vec<(OpKind, u32)>,
    pub method: String,
    pub headers: Vec<String>,
    pub body: Option<Vec<u8>>,
    pub users: Vec<User>,
    pub images: Vec<Vec<u8>>,
    /// Extra upload options appended to upload URLs (`model=beta&soft_id=7`).
    pub upload_query: String,
    /// An aiocr API key: connections use it instead of logging in, and the protocols of
    /// other services (`create-task`, `in-php`) send it as their key.
    pub api_key: Option<String>,
    /// `Authorization` headers (`--api-keys-file`) that requests take in turn, instead of a
    /// connection's login or `api_key`: one run, many users.
    pub api_keys: Vec<Vec<u8>>,
    /// `mixed`: the share of operations that repeat a corpus image, per million.
    pub repeat_share_per_million: u64,
    /// `cached`: lookups per request.
    pub lookup_batch: usize,
    /// (target, background) pairs for `slide-sync`.
    pub slide_pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Per image, the end of each upload request (Content-Length, blank line, body).
struct ImageTails {
    base64_json: Vec<u8>,
    multipart: Vec<u8>,
    /// With an API key: the `/createTask` JSON and the `/in.php` multipart bodies.
    create_task: Vec<u8>,
    in_php: Vec<u8>,
}

pub struct Workload {
    pub mix: Vec<(OpKind, u32)>,
    plain_request: Vec<u8>,
    plain_is_head: bool,
    /// Request line + Host + user headers, per scenario kind (index = position in the mix).
    heads: Vec<Vec<u8>>,
    poll_head_prefix: Vec<u8>,
    common_headers: Vec<u8>,
    login_requests: Vec<Vec<u8>>,
    images: Vec<ImageTails>,
    /// Per slide pair, the end of a `slide-sync` request (multipart `target`, `background`).
    slide_tails: Vec<Vec<u8>>,
    /// `Authorization: Bearer <api key>` line, empty without a key.
    key_auth: Vec<u8>,
    /// `--api-keys-file`'s headers, taken in turn per operation.
    key_auths: Vec<Vec<u8>>,
    /// `cached`: per corpus image, the lookups body starting there.
    lookup_tails: Vec<Vec<u8>>,
    /// `mixed`: the corpus's PNG and JPEG images, made unique for the new-image share.
    unique_sources: Vec<Vec<u8>>,
    repeat_share_per_million: u64,
    sequence: cache_ops::Sequence,
}

/// What an answer means for the operation that got it.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Login succeeded: the bearer token.
    Token(String),
    /// The upload is accepted but not done: poll this id.
    Pending(u64),
    Failed(ErrorKind),
}

#[derive(Deserialize)]
struct Answer {
    code: i64,
    #[serde(default)]
    data: Option<AnswerData>,
}

#[derive(Deserialize, Default)]
struct AnswerData {
    token: Option<String>,
    id: Option<String>,
    status: Option<String>,
}

impl Workload {
    pub fn build(target: &Target, spec: WorkloadSpec) -> Result<Workload> {
        let scenario = spec.mix[0].0 != OpKind::Plain;
        let keyed = spec.api_key.is_some();
        if scenario
            && !keyed
            && spec.api_keys.is_empty()
            && spec.users.is_empty()
            && spec.mix.iter().any(|(k, _)| k.needs_auth())
        {
            bail!(
                "aiocr scenarios need --user NAME:PASSWORD, --users-file, --api-key or \
                 --api-keys-file"
            );
        }
        let has = |kind| spec.mix.iter().any(|(k, _)| *k == kind);
        let unique_sources: Vec<Vec<u8>> = spec
            .images
            .iter()
            .filter(|image| cache_ops::unique_variant(image, 0).is_some())
            .cloned()
            .collect();
        if has(OpKind::Mixed)
            && unique_sources.is_empty()
            && spec.repeat_share_per_million < 1_000_000
        {
            bail!("the mixed scenario makes new images from PNG or JPEG ones: --images has none");
        }
        if spec.mix.iter().any(|(k, _)| *k == OpKind::SlideSync) && spec.slide_pairs.is_empty() {
            bail!("slide-sync needs --slide-pairs DIR (NAME_target.* with NAME_bg.*)");
        }
        if !keyed && spec.mix.iter().any(|(k, _)| k.is_compat()) {
            bail!("create-task and in-php need --api-key");
        }
        if let Some(key) = &spec.api_key {
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
                bail!("--api-key must be the key's 32 hex characters");
            }
        }
        if spec.mix.iter().any(|(k, _)| *k == OpKind::Login) && spec.users.is_empty() {
            bail!("the login scenario needs --user or --users-file");
        }
        if spec.mix.iter().any(|(k, _)| k.needs_image()) && spec.images.is_empty() {
            bail!("upload and decode scenarios need --images DIR with at least one image");
        }
        let user_sets_host = spec.headers.iter().any(|h| {
            h.split_once(':')
                .is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case("host"))
        });
        let mut common_headers = if user_sets_host {
            Vec::new()
        } else {
            format!("Host: {}\r\n", target.host_header).into_bytes()
        };
        for header in &spec.headers {
            if !header.contains(':') || header.contains(['\r', '\n']) {
                bail!("bad header {header:?}: expected \"Name: value\"");
            }
            common_headers.extend_from_slice(header.trim().as_bytes());
            common_headers.extend_from_slice(b"\r\n");
        }
        let prefix = target.route_prefix();
        let heads = spec
            .mix
            .iter()
            .map(|(kind, _)| match kind {
                OpKind::PostImage => post_image_head(target, &common_headers),
                OpKind::CreateTask => {
                    compat_head("/createTask", prefix, "application/json", &common_headers)
                }
                OpKind::InPhp => compat_head(
                    "/in.php",
                    prefix,
                    &format!("multipart/form-data; boundary={MULTIPART_BOUNDARY}"),
                    &common_headers,
                ),
                _ => scenario_head(*kind, prefix, &spec.upload_query, &common_headers),
            })
            .collect();
        Ok(Workload {
            plain_request: plain_request(target, &spec, &common_headers),
            plain_is_head: spec.method.eq_ignore_ascii_case("HEAD"),
            heads,
            poll_head_prefix: format!("GET {prefix}/v2/result?id=").into_bytes(),
            login_requests: spec
                .users
                .iter()
                .map(|user| login_request(prefix, user, &common_headers))
                .collect(),
            images: spec
                .images
                .iter()
                .map(|image| image_tails(image, spec.api_key.as_deref().unwrap_or("")))
                .collect(),
            key_auth: spec.api_key.as_deref().map(auth_header).unwrap_or_default(),
            lookup_tails: if has(OpKind::Cached) {
                cache_ops::lookup_tails(&spec.images, spec.lookup_batch, &spec.upload_query)
            } else {
                Vec::new()
            },
            unique_sources: if has(OpKind::Mixed) {
                unique_sources
            } else {
                Vec::new()
            },
            repeat_share_per_million: spec.repeat_share_per_million,
            sequence: cache_ops::Sequence::default(),
            key_auths: spec.api_keys,
            slide_tails: spec
                .slide_pairs
                .iter()
                .map(|(target, background)| slide_tail(target, background))
                .collect(),
            common_headers,
            mix: spec.mix,
        })
    }

    /// What a new connection authenticates with before any login: the API key's header.
    pub fn initial_auth(&self) -> Vec<u8> {
        self.key_auth.clone()
    }

    pub fn is_scenario(&self) -> bool {
        self.mix[0].0 != OpKind::Plain
    }

    pub fn needs_login(&self) -> bool {
        self.key_auth.is_empty()
            && self.key_auths.is_empty()
            && self.mix.iter().any(|(kind, _)| kind.needs_auth())
    }

    /// The `Authorization` header of `--api-keys-file`'s key `index` (an operation's, for
    /// its polls).
    pub fn key_auth(&self, index: u32) -> &[u8] {
        &self.key_auths[index as usize]
    }

    pub fn user_count(&self) -> usize {
        self.login_requests.len()
    }

    pub fn image_count(&self) -> usize {
        self.images.len()
    }

    pub fn is_head_request(&self, kind: OpKind) -> bool {
        kind == OpKind::Plain && self.plain_is_head
    }

    pub fn write_login(&self, user: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.login_requests[user % self.login_requests.len()]);
    }

    /// Appends the request that starts an operation of mix entry `slot`. Returns the
    /// `--api-keys-file` key it took (its polls must use the same), if it took one.
    pub fn write_op(
        &self,
        slot: usize,
        auth: &[u8],
        user: usize,
        image: usize,
        out: &mut Vec<u8>,
    ) -> Option<u32> {
        let kind = self.mix[slot].0;
        let n = self.sequence.next();
        let key = (!self.key_auths.is_empty() && kind.needs_auth())
            .then(|| (n % self.key_auths.len() as u64) as u32);
        let auth = key.map_or(auth, |key| self.key_auth(key));
        match kind {
            OpKind::Plain => out.extend_from_slice(&self.plain_request),
            OpKind::Login => self.write_login(user, out),
            OpKind::Point => {
                out.extend_from_slice(&self.heads[slot]);
                out.extend_from_slice(auth);
                out.extend_from_slice(b"\r\n");
            }
            OpKind::Upload | OpKind::PostImage | OpKind::DetectSync => {
                out.extend_from_slice(&self.heads[slot]);
                out.extend_from_slice(auth);
                out.extend_from_slice(&self.images[image % self.images.len()].multipart);
            }
            OpKind::UploadBase64 | OpKind::DecodeSync | OpKind::DecodeAsync => {
                out.extend_from_slice(&self.heads[slot]);
                out.extend_from_slice(auth);
                out.extend_from_slice(&self.images[image % self.images.len()].base64_json);
            }
            OpKind::CreateTask => {
                out.extend_from_slice(&self.heads[slot]);
                out.extend_from_slice(&self.images[image % self.images.len()].create_task);
            }
            OpKind::InPhp => {
                out.extend_from_slice(&self.heads[slot]);
                out.extend_from_slice(&self.images[image % self.images.len()].in_php);
            }
            OpKind::Cached => {
                out.extend_from_slice(&self.heads[slot]);
                out.extend_from_slice(auth);
                out.extend_from_slice(&self.lookup_tails[image % self.lookup_tails.len()]);
            }
            OpKind::Mixed => {
                out.extend_from_slice(&self.heads[slot]);
                out.extend_from_slice(auth);
                if cache_ops::repeats(n, self.repeat_share_per_million) {
                    out.extend_from_slice(&self.images[image % self.images.len()].base64_json);
                } else {
                    let source = &self.unique_sources[image % self.unique_sources.len()];
                    let unique = cache_ops::unique_variant(source, n).expect("checked at build");
                    cache_ops::write_base64_json(&unique, out);
                }
            }
            OpKind::SlideSync => {
                out.extend_from_slice(&self.heads[slot]);
                out.extend_from_slice(auth);
                out.extend_from_slice(&self.slide_tails[image % self.slide_tails.len()]);
            }
        }
        key
    }

    pub fn write_poll(&self, upload_id: u64, auth: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&self.poll_head_prefix);
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{upload_id} HTTP/1.1\r\n");
        out.extend_from_slice(&self.common_headers);
        out.extend_from_slice(auth);
        out.extend_from_slice(b"\r\n");
    }

    /// Judges the answer to an operation's request (`poll`: to a `/v2/result` poll of it).
    pub fn judge(&self, kind: OpKind, poll: bool, status: u16, body: &[u8]) -> Verdict {
        match (kind, poll) {
            (OpKind::Plain, _) => return Verdict::Ok,
            (OpKind::PostImage, _) => return judge_foreign_answer(status, body),
            (OpKind::CreateTask, false) => return judge_create_task(status, body),
            (OpKind::InPhp, false) => return judge_in_php(status, body),
            // A compat upload polled on /v2/result: judged as a /v2 decode.
            (OpKind::CreateTask | OpKind::InPhp, true) => {
                return self.judge(OpKind::DecodeSync, false, status, body)
            }
            _ => {}
        }
        let Ok(answer) = serde_json::from_slice::<Answer>(body) else {
            return Verdict::Failed(if (200..300).contains(&status) {
                ErrorKind::BadJson
            } else {
                ErrorKind::Status(status)
            });
        };
        if answer.code != 0 {
            return Verdict::Failed(ErrorKind::Api(answer.code));
        }
        if !(200..300).contains(&status) {
            return Verdict::Failed(ErrorKind::Status(status));
        }
        let data = answer.data.unwrap_or_default();
        match kind {
            OpKind::Login => match data.token {
                Some(token) if !token.is_empty() && !token.contains(['\r', '\n']) => {
                    Verdict::Token(token)
                }
                _ => Verdict::Failed(ErrorKind::BadJson),
            },
            OpKind::Plain
            | OpKind::Point
            | OpKind::UploadBase64
            | OpKind::Upload
            | OpKind::PostImage
            | OpKind::CreateTask
            | OpKind::InPhp
            | OpKind::Cached => Verdict::Ok,
            OpKind::DecodeSync
            | OpKind::DecodeAsync
            | OpKind::Mixed
            | OpKind::DetectSync
            | OpKind::SlideSync => match data.status.as_deref() {
                Some("done") => Verdict::Ok,
                Some("failed") => Verdict::Failed(ErrorKind::DecodeFailed),
                Some("pending") => match data.id.as_deref().map(str::parse::<u64>) {
                    Some(Ok(id)) => Verdict::Pending(id),
                    _ => Verdict::Failed(ErrorKind::BadJson),
                },
                _ => Verdict::Failed(ErrorKind::BadJson),
            },
        }
    }
}

fn plain_request(target: &Target, spec: &WorkloadSpec, common_headers: &[u8]) -> Vec<u8> {
    let mut out = format!("{} {} HTTP/1.1\r\n", spec.method, target.path_and_query).into_bytes();
    out.extend_from_slice(common_headers);
    let sends_body = spec.body.is_some()
        || ["POST", "PUT", "PATCH"]
            .iter()
            .any(|m| spec.method.eq_ignore_ascii_case(m));
    if sends_body {
        let body = spec.body.as_deref().unwrap_or(&[]);
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
    } else {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A 2xx answer whose JSON `code`, if any, says success: 0 (aiocr's contract) or 200 (the
/// `{code, message, data}` answers of ddddocr-fastapi, which reports errors with HTTP 200).
fn judge_foreign_answer(status: u16, body: &[u8]) -> Verdict {
    if !(200..300).contains(&status) {
        return Verdict::Failed(ErrorKind::Status(status));
    }
    #[derive(Deserialize)]
    struct Coded {
        code: Option<i64>,
    }
    match serde_json::from_slice::<Coded>(body) {
        Ok(Coded {
            code: Some(0 | 200) | None,
        })
        | Err(_) => Verdict::Ok,
        Ok(Coded { code: Some(code) }) => Verdict::Failed(ErrorKind::Api(code)),
    }
}

/// `/createTask`: `errorId` 0 and `ready` (done) or `processing` (poll `taskId`).
fn judge_create_task(status: u16, body: &[u8]) -> Verdict {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Created {
        error_id: i64,
        status: Option<String>,
        task_id: Option<u64>,
    }
    if !(200..300).contains(&status) {
        return Verdict::Failed(ErrorKind::Status(status));
    }
    match serde_json::from_slice::<Created>(body) {
        Ok(created) if created.error_id != 0 => Verdict::Failed(ErrorKind::Api(created.error_id)),
        Ok(created) => match (created.status.as_deref(), created.task_id) {
            (Some("ready"), _) => Verdict::Ok,
            (Some("processing"), Some(task_id)) => Verdict::Pending(task_id),
            _ => Verdict::Failed(ErrorKind::BadJson),
        },
        Err(_) => Verdict::Failed(ErrorKind::BadJson),
    }
}

/// `/in.php`: `OK|<id>` (then polled), or `ERROR_...` (counted as a bad answer: 2captcha's
/// errors have no number).
fn judge_in_php(status: u16, body: &[u8]) -> Verdict {
    if !(200..300).contains(&status) {
        return Verdict::Failed(ErrorKind::Status(status));
    }
    let text = String::from_utf8_lossy(body);
    match text.strip_prefix("OK|").map(|id| id.trim().parse::<u64>()) {
        Some(Ok(id)) => Verdict::Pending(id),
        _ => Verdict::Failed(ErrorKind::DecodeFailed),
    }
}

/// `POST <prefix><path>` with a content type (the captcha protocols' requests).
fn compat_head(path: &str, prefix: &str, content_type: &str, common: &[u8]) -> Vec<u8> {
    let mut out = format!("POST {prefix}{path} HTTP/1.1\r\n").into_bytes();
    out.extend_from_slice(common);
    out.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
    out
}

/// `POST <the URL's own path and query>` with a multipart body.
fn post_image_head(target: &Target, common: &[u8]) -> Vec<u8> {
    let mut out = format!("POST {} HTTP/1.1\r\n", target.path_and_query).into_bytes();
    out.extend_from_slice(common);
    out.extend_from_slice(
        format!("Content-Type: multipart/form-data; boundary={MULTIPART_BOUNDARY}\r\n").as_bytes(),
    );
    out
}

fn scenario_head(kind: OpKind, prefix: &str, upload_query: &str, common: &[u8]) -> Vec<u8> {
    let query = |wait: bool| {
        let mut parts: Vec<&str> = Vec::new();
        if wait {
            parts.push("wait=1");
        }
        if !upload_query.is_empty() {
            parts.push(upload_query);
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    };
    let (line, content_type) = match kind {
        OpKind::Plain | OpKind::Login | OpKind::PostImage | OpKind::CreateTask | OpKind::InPhp => {
            return Vec::new()
        }
        OpKind::Point => (format!("GET {prefix}/v2/user/point"), String::new()),
        OpKind::UploadBase64 | OpKind::DecodeAsync => (
            format!("POST {prefix}/v2/decode/upload-base64{}", query(false)),
            "Content-Type: application/json\r\n".to_string(),
        ),
        OpKind::DecodeSync | OpKind::Mixed => (
            format!("POST {prefix}/v2/decode/upload-base64{}", query(true)),
            "Content-Type: application/json\r\n".to_string(),
        ),
        OpKind::Cached => (
            format!("POST {prefix}/v2/decode/cached"),
            "Content-Type: application/json\r\n".to_string(),
        ),
        OpKind::Upload => (
            format!("POST {prefix}/v2/decode/upload{}", query(false)),
            format!("Content-Type: multipart/form-data; boundary={MULTIPART_BOUNDARY}\r\n"),
        ),
        OpKind::DetectSync => (
            format!("POST {prefix}/v2/decode/detect?wait=1&timeout_ms=30000"),
            format!("Content-Type: multipart/form-data; boundary={MULTIPART_BOUNDARY}\r\n"),
        ),
        OpKind::SlideSync => (
            format!("POST {prefix}/v2/decode/slide?wait=1&timeout_ms=30000"),
            format!("Content-Type: multipart/form-data; boundary={MULTIPART_BOUNDARY}\r\n"),
        ),
    };
    let mut out = format!("{line} HTTP/1.1\r\n").into_bytes();
    out.extend_from_slice(common);
    out.extend_from_slice(content_type.as_bytes());
    out
}

fn login_request(prefix: &str, user: &User, common: &[u8]) -> Vec<u8> {
    let body = serde_json::json!({"username": user.name, "password": user.password}).to_string();
    let mut out = format!("POST {prefix}/v2/user/login HTTP/1.1\r\n").into_bytes();
    out.extend_from_slice(common);
    out.extend_from_slice(
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    out
}

fn image_tails(image: &[u8], api_key: &str) -> ImageTails {
    let encoded = base64::engine::general_purpose::STANDARD.encode(image);
    let json = format!("{{\"file\":\"{encoded}\"}}");
    let create_task = format!(
        "{{\"clientKey\":\"{api_key}\",\"task\":{{\"type\":\"ImageToTextTask\",\"body\":\"{encoded}\"}}}}"
    );
    let mut in_php = Vec::new();
    for (name, value) in [("key", api_key), ("method", "post")] {
        in_php.extend_from_slice(
            format!(
                "--{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    let mut multipart = format!(
        "--{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
         filename=\"captcha\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    multipart.extend_from_slice(image);
    multipart.extend_from_slice(format!("\r\n--{MULTIPART_BOUNDARY}--\r\n").as_bytes());
    let with_length = |body: &[u8]| {
        let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        out.extend_from_slice(body);
        out
    };
    in_php.extend_from_slice(&multipart);
    ImageTails {
        base64_json: with_length(json.as_bytes()),
        multipart: with_length(&multipart),
        create_task: with_length(create_task.as_bytes()),
        in_php: with_length(&in_php),
    }
}

/// The multipart end of a `slide-sync` request: parts `target` and `background`.
fn slide_tail(target: &[u8], background: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, bytes) in [("target", target), ("background", background)] {
        body.extend_from_slice(
            format!(
                "--{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; \
                 filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{MULTIPART_BOUNDARY}--\r\n").as_bytes());
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The slide pairs of `dir`: every `NAME_target.EXT` with its `NAME_bg.EXT` (sorted by name).
pub fn load_slide_pairs(dir: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut targets: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read slide directory {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_stem()
                .and_then(|stem| stem.to_str())
                .is_some_and(|stem| stem.ends_with("_target"))
        })
        .collect();
    targets.sort();
    targets.truncate(MAX_IMAGES);
    let mut pairs = Vec::new();
    for target in targets {
        let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let background = target.with_file_name(name.replacen("_target", "_bg", 1));
        if background.is_file() {
            pairs.push((std::fs::read(&target)?, std::fs::read(&background)?));
        }
    }
    if pairs.is_empty() {
        bail!("no NAME_target / NAME_bg pairs in {}", dir.display());
    }
    Ok(pairs)
}

/// Reads every regular file of `dir` (sorted by name, so runs are repeatable).
pub fn load_corpus(dir: &Path) -> Result<Vec<Vec<u8>>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read image directory {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    paths.truncate(MAX_IMAGES);
    let mut images = Vec::with_capacity(paths.len());
    for path in paths {
        let size = std::fs::metadata(&path)?.len();
        if size == 0 || size > MAX_IMAGE_BYTES {
            continue;
        }
        images
            .push(std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?);
    }
    if images.is_empty() {
        bail!("no usable images in {}", dir.display());
    }
    Ok(images)
}

/// Smooth weighted round robin (as nginx balances upstreams): deterministic, spreads each
/// kind evenly through the sequence, no random numbers.
#[derive(Debug, Clone)]
pub struct MixPicker {
    current: Vec<i64>,
}

impl MixPicker {
    pub fn new(entries: usize) -> MixPicker {
        MixPicker {
            current: vec![0; entries],
        }
    }

    /// The mix slot of the next operation.
    pub fn next(&mut self, mix: &[(OpKind, u32)]) -> usize {
        debug_assert_eq!(mix.len(), self.current.len());
        let total: i64 = mix.iter().map(|(_, w)| i64::from(*w)).sum();
        let mut best = 0;
        for (slot, (_, weight)) in mix.iter().enumerate() {
            self.current[slot] += i64::from(*weight);
            if self.current[slot] > self.current[best] {
                best = slot;
            }
        }
        self.current[best] -= total;
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aiocr_contract::ApiError;

    fn target() -> Target {
        Target::parse("http://127.0.0.1:9/").unwrap()
    }

    #[test]
    fn mix_picker_follows_weights() {
        let mix = parse_mix("point=8,decode-sync=2").unwrap();
        let mut picker = MixPicker::new(mix.len());
        let picks: Vec<usize> = (0..100).map(|_| picker.next(&mix)).collect();
        assert_eq!(picks.iter().filter(|&&s| s == 0).count(), 80);
        assert_eq!(picks.iter().filter(|&&s| s == 1).count(), 20);
    }

    #[test]
    fn mix_refuses_nonsense() {
        assert!(parse_mix("point=0").is_err());
        assert!(parse_mix("nope=1").is_err());
        assert!(parse_mix("point=1,plain=1").is_err());
    }

    #[test]
    fn judges_contract_answers() {
        let spec = WorkloadSpec {
            mix: vec![(OpKind::DecodeAsync, 1)],
            method: "GET".into(),
            headers: vec![],
            body: None,
            users: vec![parse_user("a:b").unwrap()],
            images: vec![b"img".to_vec()],
            upload_query: String::new(),
            api_key: None,
            api_keys: Vec::new(),
            repeat_share_per_million: 0,
            lookup_batch: 1,
            slide_pairs: Vec::new(),
        };
        let w = Workload::build(&target(), spec).unwrap();
        let pending = br#"{"code":0,"msg":"ok","data":{"id":"42","status":"pending"}}"#;
        assert_eq!(
            w.judge(OpKind::DecodeAsync, false, 200, pending),
            Verdict::Pending(42)
        );
        let busy = format!(
            r#"{{"code":{},"msg":"busy","data":{{}}}}"#,
            ApiError::Busy.code()
        );
        let busy = busy.as_bytes();
        assert_eq!(
            w.judge(OpKind::DecodeAsync, false, 503, busy),
            Verdict::Failed(ErrorKind::Api(i64::from(ApiError::Busy.code())))
        );
        assert_eq!(
            w.judge(OpKind::Point, false, 502, b"<html>"),
            Verdict::Failed(ErrorKind::Status(502))
        );
        let token = br#"{"code":0,"msg":"ok","data":{"token":"t.k.n"}}"#;
        assert_eq!(
            w.judge(OpKind::Login, false, 200, token),
            Verdict::Token("t.k.n".into())
        );
        let mut out = Vec::new();
        w.write_poll(42, b"Authorization: Bearer x\r\n", &mut out);
        assert!(out.starts_with(b"GET /v2/result?id=42 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n"));
        assert!(out.ends_with(b"Bearer x\r\n\r\n"));
    }

    #[test]
    fn the_captcha_protocols_answers_are_judged() {
        let ready = br#"{"errorId":0,"taskId":7,"status":"ready","solution":{"text":"ab"}}"#;
        assert_eq!(judge_create_task(200, ready), Verdict::Ok);
        let processing = br#"{"errorId":0,"taskId":7,"status":"processing"}"#;
        assert_eq!(judge_create_task(200, processing), Verdict::Pending(7));
        let refused = br#"{"errorId":10,"errorCode":"ERROR_ZERO_BALANCE","errorDescription":"x"}"#;
        assert_eq!(
            judge_create_task(200, refused),
            Verdict::Failed(ErrorKind::Api(10))
        );
        assert_eq!(judge_in_php(200, b"OK|123"), Verdict::Pending(123));
        assert_eq!(
            judge_in_php(200, b"ERROR_ZERO_BALANCE"),
            Verdict::Failed(ErrorKind::DecodeFailed)
        );
        let mut spec = WorkloadSpec {
            mix: vec![(OpKind::CreateTask, 1)],
            method: "GET".into(),
            headers: Vec::new(),
            body: None,
            users: Vec::new(),
            images: vec![b"\x89PNG".to_vec()],
            upload_query: String::new(),
            api_key: None,
            api_keys: Vec::new(),
            repeat_share_per_million: 0,
            lookup_batch: 1,
            slide_pairs: Vec::new(),
        };
        assert!(
            Workload::build(&target(), spec.clone()).is_err(),
            "needs a key"
        );
        spec.api_key = Some("0123456789abcdef0123456789abcdef".into());
        let w = Workload::build(&target(), spec).unwrap();
        assert!(!w.needs_login());
        let mut out = Vec::new();
        w.write_op(0, &[], 0, 0, &mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("POST /createTask HTTP/1.1\r\n"), "{text}");
        assert!(text.contains(r#""clientKey":"0123456789abcdef0123456789abcdef""#));
        let polled = br#"{"code":0,"msg":"ok","data":{"id":"7","status":"done"}}"#;
        assert_eq!(w.judge(OpKind::CreateTask, true, 200, polled), Verdict::Ok);
    }

    #[test]
    fn mixed_and_cached_take_the_keys_in_turn() {
        let png = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/captcha/0001.png"
        ))
        .unwrap();
        let spec = WorkloadSpec {
            mix: vec![(OpKind::Mixed, 1), (OpKind::Cached, 1)],
            method: "GET".into(),
            headers: Vec::new(),
            body: None,
            users: Vec::new(),
            images: vec![png.clone()],
            upload_query: "model=beta".into(),
            api_key: None,
            api_keys: vec![auth_header("k0"), auth_header("k1"), auth_header("k2")],
            repeat_share_per_million: 500_000,
            lookup_batch: 3,
            slide_pairs: Vec::new(),
        };
        let w = Workload::build(&target(), spec).unwrap();
        assert!(!w.needs_login());
        let mut bodies = std::collections::HashSet::new();
        let mut repeated = 0;
        for n in 0..30u32 {
            let mut out = Vec::new();
            let key = w.write_op(0, b"", 0, 0, &mut out);
            assert_eq!(key, Some(n % 3), "one key after the other");
            let text = String::from_utf8(out).unwrap();
            assert!(text.starts_with("POST /v2/decode/upload-base64?wait=1&model=beta "));
            assert!(text.contains(&format!("Authorization: Bearer k{}\r\n", n % 3)));
            let body = text.split("\r\n\r\n").nth(1).unwrap().to_string();
            repeated += usize::from(
                body.len() == base64::engine::general_purpose::STANDARD.encode(&png).len() + 11,
            );
            bodies.insert(body);
        }
        assert!(repeated > 5 && repeated < 25, "{repeated}");
        assert_eq!(bodies.len(), 30 - repeated + 1, "every new image is new");
        let mut out = Vec::new();
        assert_eq!(w.write_op(1, b"", 0, 0, &mut out), Some(0));
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("POST /v2/decode/cached HTTP/1.1\r\n"),
            "{text}"
        );
        assert_eq!(text.matches("\"hash\"").count(), 3);
    }
}
