//! Passwords (argon2id) and tokens (JWT HS256 with `exp`).
//!
//! - `hash_password`/`verify_password` take milliseconds of CPU: the server calls them off
//!   the reactor. `dummy_hash` lets a login for an unknown user cost the same as a real one.
//! - `verify_token` is the hot path: it only checks an HMAC with the key decoded at start-up.
//!   Only HS256 is accepted (a token with `alg: none` or any other alg is refused), the
//!   signature must match, `exp` is required and has no leeway.
//! - The secret comes from config, else from `<data>/jwt.secret` (64 hex chars = 32 random
//!   bytes), created once with mode 0600; a secret file readable by others is refused.
//! - API keys (`new_api_key`): 32 lowercase hex characters from the OS's CSPRNG, stored only
//!   as their BLAKE3 hash. A key is drawn until its hash routes to its user's node and shard
//!   (`api_key_route`), so a key finds its user's shard the way a token's user id does,
//!   without a platform-wide index; that costs at most log2(64 x 16) = 10 of its 128 bits.

use crate::store::Role;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const SECRET_FILE: &str = "jwt.secret";
const SECRET_BYTES: usize = 32;
/// A configured secret shorter than this is refused (HS256 wants 256 bits of key).
pub const MIN_SECRET_BYTES: usize = 32;
/// Longest password accepted anywhere, creation and login alike, in bytes (argon2's cost does
/// not depend on it, but what a request may make the server hash is bounded).
pub const MAX_PASSWORD_BYTES: usize = 256;
/// Shortest password accepted for new users, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Random bytes in a generated password (96 bits: 16 base64url characters).
const GENERATED_PASSWORD_BYTES: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("jwt secret: {0}")]
    Secret(String),
    #[error("password hashing: {0}")]
    Hash(String),
    /// Bad signature, other alg, malformed, missing claims: contract 1003.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// Contract 1003 too.
    #[error("token expired")]
    Expired,
}

/// The token keys, decoded once.
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    /// The user id in decimal.
    pub sub: String,
    /// The role at issue, for clients (the console shows admin pages by it); the server
    /// takes the role from the store (server/sessions.rs).
    pub role: Role,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// The user's token epoch at issue; the server refuses a token whose epoch is no longer
    /// the user's (logout, password or role change, revocation). Tokens issued before
    /// epochs existed have none: epoch 0, every user's first.
    #[serde(default)]
    pub ep: u32,
}

impl Keys {
    pub fn from_secret(secret: &[u8]) -> Result<Keys, AuthError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(AuthError::Secret(format!(
                "shorter than {MIN_SECRET_BYTES} bytes"
            )));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        })
    }
}

/// Keys from the configured secret, else from `<data>/jwt.secret` (created on first use).
pub fn load_or_create_keys(
    data_dir: &Path,
    configured_secret: Option<&str>,
) -> Result<Keys, AuthError> {
    match configured_secret {
        Some(secret) => Keys::from_secret(secret.as_bytes()),
        None => Keys::from_secret(&load_or_create_secret_file(data_dir)?),
    }
}

fn load_or_create_secret_file(data_dir: &Path) -> Result<Vec<u8>, AuthError> {
    let path = data_dir.join(SECRET_FILE);
    let fail = |what: &str, error: std::io::Error| {
        AuthError::Secret(format!("{what} {}: {error}", path.display()))
    };
    std::fs::create_dir_all(data_dir).map_err(|e| fail("creating the directory of", e))?;
    let mut random = [0u8; SECRET_BYTES];
    getrandom::getrandom(&mut random)
        .map_err(|e| AuthError::Secret(format!("random bytes: {e}")))?;
    // create_new: of two processes starting at once, one creates and both then read it.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            file.write_all(hex(&random).as_bytes())
                .and_then(|_| file.sync_all())
                .map_err(|e| fail("writing", e))?;
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(fail("creating", error)),
    }
    let mode = std::fs::metadata(&path)
        .map_err(|e| fail("reading", e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(AuthError::Secret(format!(
            "{} has mode {:o}; it must be 0600",
            path.display(),
            mode & 0o777
        )));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| fail("reading", e))?;
    unhex(text.trim())
        .filter(|secret| secret.len() == SECRET_BYTES)
        .ok_or_else(|| AuthError::Secret(format!("{} is not 64 hex characters", path.display())))
}

/// Characters of an API key (lowercase hex).
pub const API_KEY_CHARS: usize = 32;
/// Random bytes behind an API key.
const API_KEY_BYTES: usize = API_KEY_CHARS / 2;
/// Keys drawn at once while looking for one that routes to the user's node and shard.
const API_KEY_DRAW_BATCH: usize = 64;
/// Draws before giving up; the expected number is nodes x shards (at most 1024).
const API_KEY_MAX_DRAWS: usize = 1 << 16;

/// An API key as stored: its BLAKE3 hash (the key itself is shown once, never stored).
pub type ApiKeyHash = [u8; 32];

pub fn api_key_hash(key: &str) -> ApiKeyHash {
    *blake3::hash(key.as_bytes()).as_bytes()
}

/// Whether a credential has an API key's shape (a JWT has dots and is longer).
pub fn is_api_key_shaped(text: &str) -> bool {
    text.len() == API_KEY_CHARS && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The node and shard whose user an API key belongs to, from its hash alone.
pub fn api_key_route(hash: &ApiKeyHash, shard_count: u16) -> (u16, u16) {
    assert!(shard_count > 0);
    let node = u16::from(hash[0]) & crate::store::ids::MAX_NODE_ID;
    let shard = u16::from_be_bytes([hash[1], hash[2]]) % shard_count;
    (node, shard)
}

/// A fresh API key for a user of `node` and `shard`: random keys are drawn until one's hash
/// routes there.
pub fn new_api_key(node: u16, shard: u16, shard_count: u16) -> Result<String, AuthError> {
    assert!(node <= crate::store::ids::MAX_NODE_ID && shard < shard_count);
    let mut random = [0u8; API_KEY_BYTES * API_KEY_DRAW_BATCH];
    for _ in 0..API_KEY_MAX_DRAWS / API_KEY_DRAW_BATCH {
        getrandom::getrandom(&mut random)
            .map_err(|e| AuthError::Secret(format!("random bytes: {e}")))?;
        for candidate in random.chunks_exact(API_KEY_BYTES) {
            let key = hex(candidate);
            if api_key_route(&api_key_hash(&key), shard_count) == (node, shard) {
                assert!(is_api_key_shaped(&key));
                return Ok(key);
            }
        }
    }
    Err(AuthError::Secret(
        "no API key routed to this shard (random source broken?)".into(),
    ))
}

/// The rule for new passwords, wherever a user is created (API, `aiocr user add`).
pub fn check_new_password(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "password must be {MIN_PASSWORD_CHARS}..={MAX_PASSWORD_BYTES} characters"
        ));
    }
    Ok(())
}

/// A password for a generated account (the demo users): 16 characters of the OS's CSPRNG.
pub fn random_password() -> Result<String, AuthError> {
    let mut bytes = [0u8; GENERATED_PASSWORD_BYTES];
    getrandom::getrandom(&mut bytes).map_err(|e| AuthError::Hash(format!("random bytes: {e}")))?;
    let password = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
    assert!(check_new_password(&password).is_ok());
    Ok(password)
}

pub fn hash_password(password: &str) -> Result<String, AuthError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AuthError::Hash(format!(
            "password longer than {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    let mut salt_bytes = [0u8; 16];
    getrandom::getrandom(&mut salt_bytes)
        .map_err(|e| AuthError::Hash(format!("random salt: {e}")))?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| AuthError::Hash(e.to_string()))?;
    // Argon2::default() is argon2id v19, m=19 MiB, t=2, p=1 (the OWASP minimum).
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| AuthError::Hash(e.to_string()))?;
    Ok(hash.to_string())
}

/// True if `password` matches the PHC `hash`; a malformed hash is simply no match.
pub fn verify_password(hash: &str, password: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// The argon2id hash (default parameters) of 32 random bytes that were thrown away: verify
/// it for unknown usernames so "no such user" and "wrong password" take the same time. A
/// constant, so the first login does not pay for computing it on the reactor.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$DoI3PZP45EPiaX4chSqKDw$+Zwe/RMQF3ecT9HgK2hpdWoBTt1wZTPVf6qyJ7JLPnk";

/// See [`DUMMY_HASH`]; matches no password anyone knows.
pub fn dummy_hash() -> String {
    DUMMY_HASH.to_string()
}

/// A token for `user_id` under its token `epoch`, valid `ttl_secs` from now:
/// `(token, expires_at_unix_secs)`.
pub fn issue_token(
    keys: &Keys,
    user_id: u64,
    role: Role,
    epoch: u32,
    ttl_secs: u64,
) -> Result<(String, u64), AuthError> {
    let expires_at = crate::clock::unix_now_secs() + ttl_secs;
    let claims = Claims {
        sub: user_id.to_string(),
        role,
        exp: expires_at,
        ep: epoch,
    };
    Ok((encode_claims(keys, &claims)?, expires_at))
}

fn encode_claims(keys: &Keys, claims: &Claims) -> Result<String, AuthError> {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &keys.encoding)
        .map_err(|e| AuthError::InvalidToken(e.to_string()))
}

/// Checks alg (HS256 only), signature and `exp`; returns the claims.
pub fn verify_token(keys: &Keys, token: &str) -> Result<Claims, AuthError> {
    match jsonwebtoken::decode::<Claims>(token, &keys.decoding, &keys.validation) {
        Ok(data) => Ok(data.claims),
        Err(error)
            if matches!(
                error.kind(),
                jsonwebtoken::errors::ErrorKind::ExpiredSignature
            ) =>
        {
            Err(AuthError::Expired)
        }
        Err(error) => Err(AuthError::InvalidToken(error.to_string())),
    }
}

/// Tokens kept by a [`TokenCache`] before it starts over (bounds its memory).
pub const DEFAULT_TOKEN_CACHE_ENTRIES: usize = 10_000;

/// What a verified token says, as the server uses it: whose it is, until when, and under
/// which of the user's token epochs it was issued (the role is read from the store).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    pub user_id: u64,
    /// Expiry, Unix seconds.
    pub exp: u64,
    pub epoch: u32,
}

impl VerifiedToken {
    fn of(claims: &Claims) -> Result<VerifiedToken, AuthError> {
        let user_id = claims
            .sub
            .parse()
            .map_err(|_| AuthError::InvalidToken("the subject is not a user id".into()))?;
        Ok(VerifiedToken {
            user_id,
            exp: claims.exp,
            epoch: claims.ep,
        })
    }
}

/// Per-shard memo of verified tokens: a client reuses its token for many requests, and a hit
/// skips the base64/JSON/HMAC work of [`verify_token`]. Only tokens that passed full
/// verification are kept, keyed by their exact text, and `exp` is checked again on every
/// hit, so a hit answers what `verify_token` would (but for the coarse clock's tick at the
/// turn of the expiry second, see `verify`). Single-threaded (one per shard).
///
/// Hashed with foldhash, not SipHash: hashing the ~200-byte token with SipHash was 4 % of
/// the instructions of `GET /v2/user/point`. Flooding needs colliding keys in the table, and
/// only tokens whose signature verified get in, so an attacker cannot choose them (the seed
/// is random per process besides).
pub struct TokenCache {
    max_entries: usize,
    verified: std::collections::HashMap<Box<str>, VerifiedToken, foldhash::fast::RandomState>,
}

impl TokenCache {
    pub fn new(max_entries: usize) -> TokenCache {
        TokenCache {
            max_entries: max_entries.max(1),
            verified: std::collections::HashMap::default(),
        }
    }

    /// `verify_token` with the memo. Expiry is judged on the coarse clock (crate::clock), at
    /// most a tick behind the exact one: a token lives at most milliseconds past its second.
    pub fn verify(&mut self, keys: &Keys, token: &str) -> Result<VerifiedToken, AuthError> {
        self.verify_at(keys, token, crate::clock::unix_now_secs_coarse())
    }

    fn verify_at(
        &mut self,
        keys: &Keys,
        token: &str,
        now_secs: u64,
    ) -> Result<VerifiedToken, AuthError> {
        if let Some(verified) = self.verified.get(token) {
            // jsonwebtoken refuses once exp < now (no leeway): the same rule here.
            if verified.exp >= now_secs {
                return Ok(*verified);
            }
            self.verified.remove(token);
            return Err(AuthError::Expired);
        }
        let verified = VerifiedToken::of(&verify_token(keys, token)?)?;
        if self.verified.len() >= self.max_entries {
            // Starting over is simpler than LRU and costs one full check per active client.
            self.verified.clear();
        }
        self.verified.insert(token.into(), verified);
        assert!(self.verified.len() <= self.max_entries);
        Ok(verified)
    }
}

/// Per-shard memo of API keys already looked up on their owner shard (the id of the key's
/// user), so a client reusing its key does not pay a hop per request; the user's role and
/// existence are checked apart, against the user's current state (server/sessions.rs).
/// Entries expire after `ttl` (a safety net); a replaced or revoked key is forgotten at once
/// on every shard (`forget`).
pub struct KeyCache {
    max_entries: usize,
    ttl: std::time::Duration,
    holders: std::collections::HashMap<ApiKeyHash, (u64, std::time::Instant)>,
}

impl KeyCache {
    pub fn new(max_entries: usize, ttl: std::time::Duration) -> KeyCache {
        KeyCache {
            max_entries: max_entries.max(1),
            ttl,
            holders: std::collections::HashMap::new(),
        }
    }

    /// The id of the key's user, if remembered.
    pub fn get(&mut self, hash: &ApiKeyHash) -> Option<u64> {
        let (holder, remembered_at) = *self.holders.get(hash)?;
        if remembered_at.elapsed() > self.ttl {
            self.holders.remove(hash);
            return None;
        }
        Some(holder)
    }

    pub fn remember(&mut self, hash: ApiKeyHash, holder: u64) {
        if self.holders.len() >= self.max_entries {
            // Starting over is simpler than LRU and costs one lookup per active client.
            self.holders.clear();
        }
        self.holders
            .insert(hash, (holder, std::time::Instant::now()));
    }

    pub fn forget(&mut self, hash: &ApiKeyHash) {
        self.holders.remove(hash);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(text.get(index..index + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_cache_forgets_and_expires() {
        let holder = 7;
        let mut cache = KeyCache::new(2, std::time::Duration::from_secs(60));
        cache.remember([1; 32], holder);
        assert_eq!(cache.get(&[1; 32]), Some(holder));
        cache.forget(&[1; 32]);
        assert_eq!(cache.get(&[1; 32]), None);
        let mut expired = KeyCache::new(2, std::time::Duration::ZERO);
        expired.remember([1; 32], holder);
        std::thread::sleep(std::time::Duration::from_millis(1));
        assert_eq!(expired.get(&[1; 32]), None, "older than the ttl");
        for byte in 0..3u8 {
            cache.remember([byte; 32], holder);
        }
        assert!(cache.holders.len() <= 2, "bounded");
    }

    #[test]
    fn api_keys_route_to_their_users_shard_and_node() {
        for (node, shard, shard_count) in [(0, 0, 1), (0, 1, 2), (5, 15, 16), (63, 3, 4)] {
            let key = new_api_key(node, shard, shard_count).unwrap();
            assert!(is_api_key_shaped(&key), "{key}");
            assert_eq!(
                api_key_route(&api_key_hash(&key), shard_count),
                (node, shard)
            );
        }
        let first = new_api_key(0, 0, 1).unwrap();
        assert_ne!(first, new_api_key(0, 0, 1).unwrap(), "keys are random");
        assert!(!is_api_key_shaped("eyJhbGciOiJIUzI1NiJ9.e30.abc"));
        assert!(!is_api_key_shaped(&first.to_uppercase()));
        assert!(!is_api_key_shaped(&first[1..]));
    }
    use base64::Engine;

    fn keys() -> Keys {
        Keys::from_secret(&[7u8; 32]).unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn password_round_trip() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct horsE"));
        assert!(!verify_password("not a hash", "correct horse"));
        assert!(!verify_password(&dummy_hash(), ""));
        // Same parameters as a fresh hash, so verifying it costs the same.
        let parameters = |hash: &str| hash.split('$').nth(3).unwrap().to_string();
        assert_eq!(parameters(&dummy_hash()), parameters(&hash));
    }

    #[test]
    fn token_round_trip() {
        let (token, expires_at) = issue_token(&keys(), 42, Role::Developer, 3, 3600).unwrap();
        let claims = verify_token(&keys(), &token).unwrap();
        assert_eq!(
            claims,
            Claims {
                sub: "42".into(),
                role: Role::Developer,
                exp: expires_at,
                ep: 3,
            }
        );
    }

    #[test]
    fn a_token_from_before_epochs_reads_as_epoch_0() {
        #[derive(serde::Serialize)]
        struct OldClaims {
            sub: String,
            role: Role,
            exp: u64,
        }
        let old = OldClaims {
            sub: "8".into(),
            role: Role::User,
            exp: crate::clock::unix_now_secs() + 60,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &old, &keys().encoding).unwrap();
        let claims = verify_token(&keys(), &token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.ep), ("8", 0));
    }

    #[test]
    fn expired_token_is_refused() {
        let claims = Claims {
            sub: "1".into(),
            role: Role::User,
            exp: crate::clock::unix_now_secs() - 1,
            ep: 0,
        };
        let token = encode_claims(&keys(), &claims).unwrap();
        assert!(matches!(
            verify_token(&keys(), &token),
            Err(AuthError::Expired)
        ));
    }

    #[test]
    fn other_key_alg_none_and_other_algs_are_refused() {
        let (token, _) = issue_token(&keys(), 1, Role::Admin, 0, 60).unwrap();
        let other = Keys::from_secret(&[8u8; 32]).unwrap();
        assert!(matches!(
            verify_token(&other, &token),
            Err(AuthError::InvalidToken(_))
        ));

        let payload = b64(format!(
            r#"{{"sub":"1","role":"admin","exp":{}}}"#,
            crate::clock::unix_now_secs() + 600
        )
        .as_bytes());
        let none_token = format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"JWT"}"#));
        assert!(verify_token(&keys(), &none_token).is_err());

        // Same secret, HS512: a valid signature under another alg is still refused.
        let claims = Claims {
            sub: "1".into(),
            role: Role::Admin,
            exp: crate::clock::unix_now_secs() + 600,
            ep: 0,
        };
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(&[7u8; 32]),
        )
        .unwrap();
        assert!(verify_token(&keys(), &hs512).is_err());

        // A tampered payload breaks the signature.
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[1] = payload;
        assert!(verify_token(&keys(), &parts.join(".")).is_err());
        assert!(verify_token(&keys(), "garbage").is_err());
    }

    #[test]
    fn secret_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_secret_file(dir.path()).unwrap();
        let second = load_or_create_secret_file(dir.path()).unwrap();
        assert_eq!(first, second);
        let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (token, _) = issue_token(
            &load_or_create_keys(dir.path(), None).unwrap(),
            5,
            Role::User,
            0,
            60,
        )
        .unwrap();
        assert!(verify_token(&load_or_create_keys(dir.path(), None).unwrap(), &token).is_ok());

        std::fs::set_permissions(
            dir.path().join(SECRET_FILE),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert!(matches!(
            load_or_create_keys(dir.path(), None),
            Err(AuthError::Secret(_))
        ));
    }

    #[test]
    fn short_configured_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_or_create_keys(dir.path(), Some("short")).is_err());
        assert!(load_or_create_keys(dir.path(), Some(&"x".repeat(32))).is_ok());
    }

    /// Micro-benchmark of the hot-path token check (`cargo test --release -- --ignored
    /// --nocapture auth_bench`).
    #[test]
    #[ignore]
    fn auth_bench_verify_token() {
        let keys = keys();
        let (token, _) = issue_token(&keys, 123_456_789, Role::User, 0, 3600).unwrap();
        const CHECKS: u32 = 200_000;
        let started = std::time::Instant::now();
        for _ in 0..CHECKS {
            assert_eq!(verify_token(&keys, &token).unwrap().role, Role::User);
        }
        let seconds = started.elapsed().as_secs_f64();
        let mut cache = TokenCache::new(DEFAULT_TOKEN_CACHE_ENTRIES);
        let started = std::time::Instant::now();
        for _ in 0..CHECKS {
            assert_eq!(cache.verify(&keys, &token).unwrap().user_id, 123_456_789);
        }
        let cached_seconds = started.elapsed().as_secs_f64();
        println!(
            "auth_bench TokenCache::verify: {:.0} checks/s",
            f64::from(CHECKS) / cached_seconds
        );
        println!(
            "auth_bench verify_token: {CHECKS} in {seconds:.3} s = {:.0} checks/s",
            f64::from(CHECKS) / seconds
        );
        let started = std::time::Instant::now();
        assert!(verify_password(&hash_password("pw").unwrap(), "pw"));
        println!(
            "auth_bench argon2id hash+verify: {:.1} ms",
            started.elapsed().as_secs_f64() * 1000.0
        );
    }

    #[test]
    fn token_cache_answers_like_verify_token() {
        let keys = keys();
        let mut cache = TokenCache::new(2);
        let (token, expires_at) = issue_token(&keys, 9, Role::User, 0, 60).unwrap();
        for _ in 0..3 {
            assert_eq!(
                cache.verify(&keys, &token).unwrap(),
                VerifiedToken {
                    user_id: 9,
                    exp: expires_at,
                    epoch: 0
                }
            );
        }
        assert!(matches!(
            cache.verify_at(&keys, &token, expires_at + 1),
            Err(AuthError::Expired)
        ));
        assert!(cache.verify(&keys, "a.b.c").is_err());
        assert!(cache
            .verify(&Keys::from_secret(&[1u8; 32]).unwrap(), "a.b.c")
            .is_err());
        // A token signed with another key is never served from the cache.
        let other = Keys::from_secret(&[8u8; 32]).unwrap();
        let (forged, _) = issue_token(&other, 1, Role::Admin, 0, 60).unwrap();
        assert!(cache.verify(&keys, &forged).is_err());
        // Bounded: more distinct tokens than entries still verify.
        for user_id in 0..5 {
            let (token, _) = issue_token(&keys, user_id, Role::User, 0, 60).unwrap();
            assert_eq!(cache.verify(&keys, &token).unwrap().user_id, user_id);
            assert!(cache.verified.len() <= 2);
        }
    }
}
