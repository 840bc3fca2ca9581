//! One request as endpoints see it: the shard it arrived on, its head and body, its fields,
//! and the authenticated caller — by token (JWT) or by API key.

use super::fields::{body_kind, Fields, JsonTyping};
use super::node_hop;
use super::owner::{run_on_owner, OwnerCommand};
use super::reply::Refusal;
use super::sessions;
use super::shard::Shard;
use crate::auth::{self, ApiKeyHash};
use crate::contract::ApiError;
use crate::http::RequestHead;
use crate::store::{ids, Role, TokenState};
use std::borrow::Cow;
use std::net::IpAddr;
use std::rc::Rc;

pub struct Call<'a> {
    /// The shard the connection is on (not necessarily the caller's owner).
    pub shard: &'a Rc<Shard>,
    pub head: &'a RequestHead,
    pub body: Vec<u8>,
    /// The client's address (the connection's peer).
    pub peer: IpAddr,
    /// The caller, when it was authenticated from the head before the body was read.
    authenticated: Option<Caller>,
    /// Set when another node forwarded the request: its charges wait for that node's
    /// acknowledgement of the answer (cluster/confirm.rs).
    pub forwarded: Option<ForwardedFrom>,
}

/// A request another node forwarded: its tag and when it arrived here.
#[derive(Clone, Copy, Debug)]
pub struct ForwardedFrom {
    pub tag: crate::cluster::wire::ForwardTag,
    pub arrived: std::time::Instant,
}

/// Who a credential names: a caller here, or a user of another node of the cluster (that
/// node checks the credential and answers: the router forwards the request there).
#[derive(Clone, Copy, Debug)]
pub enum Authentication {
    Caller(Caller),
    AtNode(u16),
}

impl Authentication {
    /// The caller; for another node's user, the refusal that makes the router forward the
    /// request to that node (`Refusal::owner_node`).
    pub fn here(self) -> Result<Caller, Refusal> {
        match self {
            Authentication::Caller(caller) => Ok(caller),
            Authentication::AtNode(node) => Err(node_hop::owned_by(node)),
        }
    }
}

/// How the caller proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A JWT from `/v2/user/login`.
    Token,
    /// The user's API key.
    ApiKey,
}

/// The authenticated caller.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub user_id: u64,
    pub role: Role,
    /// The shard that owns the caller's data.
    pub owner: u16,
    pub via: Credential,
}

impl<'a> Call<'a> {
    pub fn new(
        shard: &'a Rc<Shard>,
        head: &'a RequestHead,
        body: Vec<u8>,
        peer: IpAddr,
        authenticated: Option<Caller>,
    ) -> Call<'a> {
        Call {
            shard,
            head,
            body,
            peer,
            authenticated,
            forwarded: None,
        }
    }

    /// The call as its head alone describes it (to authenticate before reading the body).
    pub fn without_body(shard: &'a Rc<Shard>, head: &'a RequestHead, peer: IpAddr) -> Call<'a> {
        Call::new(shard, head, Vec::new(), peer, None)
    }

    /// The call's fields: query plus a JSON, form or multipart body.
    pub fn fields(&self) -> Result<Fields, Refusal> {
        let mut fields = Fields::from_query(&self.head.query)?;
        let content_type = self.head.content_type.as_deref();
        // The `/v2` API types its JSON fields; the other protocols read them as text.
        let typing = if self.head.path.starts_with("/v2/") {
            JsonTyping::Described
        } else {
            JsonTyping::Lenient
        };
        fields.add_body(
            body_kind(content_type, &self.body),
            content_type,
            &self.body,
            typing,
        )?;
        Ok(fields)
    }

    /// The caller from `Authorization: Bearer` or `?token=`: a JWT, or an API key (1002
    /// absent, 1003 invalid or for a user this deployment cannot own, 5002 for an address
    /// that keeps trying keys that do not exist).
    /// Another node's user is refused with the hop to that node ([`Authentication::here`]).
    pub async fn caller(&self) -> Result<Caller, Refusal> {
        self.authenticate().await?.here()
    }

    /// Who the credential of `Authorization: Bearer` or `?token=` names.
    pub async fn authenticate(&self) -> Result<Authentication, Refusal> {
        if let Some(caller) = self.authenticated {
            return Ok(Authentication::Caller(caller));
        }
        let credential = bearer_token(self.head)?;
        self.authenticate_with(&credential).await
    }

    /// Who a credential names (a JWT or an API key), from wherever the protocol carries it.
    pub async fn authenticate_with(&self, credential: &str) -> Result<Authentication, Refusal> {
        if auth::is_api_key_shaped(credential) {
            return self.caller_by_key(credential).await;
        }
        self.caller_by_token(credential).await
    }

    /// The credential of `Authorization: Bearer`, if the request has one.
    pub fn bearer(&self) -> Option<&str> {
        let value = self.head.authorization.as_deref()?;
        let (scheme, token) = value.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
    }

    /// A JWT: signature and expiry (memoised per shard), then its user's current state
    /// (server/sessions.rs): the user must exist, the token's epoch must be the user's, and
    /// the role is the store's, not the token's claim.
    async fn caller_by_token(&self, token: &str) -> Result<Authentication, Refusal> {
        let verified = self
            .shard
            .auth
            .token_cache
            .borrow_mut()
            .verify(&self.shard.shared.keys, token);
        let verified = match verified {
            Ok(verified) => verified,
            // A token of another node's user is signed with that node's secret: the owner
            // checks it (a forged one is refused there).
            Err(_) => match self.foreign_token_node(token) {
                Some(node) => return Ok(Authentication::AtNode(node)),
                None => return Err(ApiError::BadToken.into()),
            },
        };
        let user_id = verified.user_id;
        if let Some(node) = self.other_node(user_id) {
            return Ok(Authentication::AtNode(node));
        }
        let owner = ids::shard_of(user_id);
        if owner >= self.shard.shard_count() {
            // Signed by us but for another shard layout: not a token of this deployment.
            return Err(ApiError::BadToken.into());
        }
        let role = sessions::token_role(self.shard, user_id, verified.epoch).await?;
        Ok(Authentication::Caller(Caller {
            user_id,
            role,
            owner,
            via: Credential::Token,
        }))
    }

    /// An API key: its user remembered on this shard, else looked up on the shard its hash
    /// routes to; the user's role and existence are its current state (server/sessions.rs),
    /// so a demoted or removed user's key changes at once. Lookups that find nothing count
    /// against the client's address; once its budget is spent (`failed_auth_per_sec`), it
    /// gets 5002 without a lookup. A wrong key costs the same lookup whatever it is, so its
    /// timing says nothing.
    async fn caller_by_key(&self, key: &str) -> Result<Authentication, Refusal> {
        let hash = auth::api_key_hash(key);
        let shard = self.shard;
        let remembered = shard.auth.key_cache.borrow_mut().get(&hash);
        if let Some(user_id) = remembered {
            return match sessions::user_state(shard, user_id).await? {
                Some(state) => Ok(key_caller(user_id, state.role)),
                None => Err(key_refused()),
            };
        }
        let address = address_id(self.peer);
        if !shard.auth.failed_auth.borrow().has_token(address) {
            return Err(too_many_failures(1));
        }
        let (node, owner) = auth::api_key_route(&hash, shard.shard_count());
        if node != shard.config().node.node_id && shard.shared.cluster.is_some() {
            return Ok(Authentication::AtNode(node));
        }
        let generation = shard.auth.user_cache.borrow().generation();
        let holder = if node == shard.config().node.node_id {
            run_on_owner(shard, ResolveKey { hash, owner }).await?
        } else {
            None // not a key of this node
        };
        let Some((user_id, state)) = holder else {
            if let Err(retry_after_secs) = shard.auth.failed_auth.borrow_mut().check(address) {
                return Err(too_many_failures(retry_after_secs));
            }
            return Err(key_refused());
        };
        shard.auth.key_cache.borrow_mut().remember(hash, user_id);
        shard
            .auth
            .user_cache
            .borrow_mut()
            .remember(user_id, Some(state), generation);
        Ok(key_caller(user_id, state.role))
    }

    /// In a cluster, the node of a user of another node (`None`: this node's, or no cluster).
    fn other_node(&self, user_id: u64) -> Option<u16> {
        self.shard.shared.cluster.as_ref()?;
        let node = ids::node_of(user_id);
        (node != self.shard.config().node.node_id).then_some(node)
    }

    /// The node of the user a JWT names, read without checking its signature (only to
    /// route it: the owner node checks it), when that is another node of the cluster.
    fn foreign_token_node(&self, token: &str) -> Option<u16> {
        use base64::Engine;
        let payload = token.split('.').nth(1)?;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()?;
        let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
        let user_id: u64 = claims.get("sub")?.as_str()?.parse().ok()?;
        self.other_node(user_id)
    }

    /// The caller, if it has one of `roles` (1005 otherwise).
    pub async fn caller_with_role(&self, roles: &[Role]) -> Result<Caller, Refusal> {
        let caller = self.caller().await?;
        if !roles.contains(&caller.role) {
            return Err(ApiError::Forbidden.into());
        }
        Ok(caller)
    }
}

fn bearer_token(head: &RequestHead) -> Result<Cow<'_, str>, Refusal> {
    if let Some(value) = &head.authorization {
        // A byte search: a char pattern's searcher costs more to set up than it searches.
        let (scheme, token) = match value.bytes().position(|b| b == b' ') {
            Some(at) => (&value[..at], &value[at + 1..]),
            None => (value.as_str(), ""),
        };
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(ApiError::BadToken.into());
        }
        return Ok(Cow::Borrowed(token));
    }
    let query = crate::http::form::parse_urlencoded(head.query.as_bytes()).unwrap_or_default();
    match query.into_iter().find(|(key, _)| key == "token") {
        Some((_, token)) if !token.is_empty() => Ok(Cow::Owned(token)),
        _ => Err(ApiError::NoToken.into()),
    }
}

fn key_caller(user_id: u64, role: Role) -> Authentication {
    Authentication::Caller(Caller {
        user_id,
        role,
        owner: ids::shard_of(user_id),
        via: Credential::ApiKey,
    })
}

fn key_refused() -> Refusal {
    Refusal::new(ApiError::BadToken, "API key invalid or revoked")
}

/// A client address as a rate-limiter key (IPv4 as its mapped IPv6 form, so one host is
/// one key).
pub fn address_id(peer: IpAddr) -> u64 {
    let octets = match peer {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    u64::from_be_bytes(
        *blake3::hash(&octets)
            .as_bytes()
            .first_chunk()
            .expect("32 bytes"),
    )
}

fn too_many_failures(retry_after_secs: u64) -> Refusal {
    Refusal::new(ApiError::RateLimited, "too many failed attempts").retry_after(retry_after_secs)
}

/// Looks an API key's hash up on the shard it routes to: its user's id and current state.
struct ResolveKey {
    hash: ApiKeyHash,
    owner: u16,
}

impl OwnerCommand for ResolveKey {
    type Output = Option<(u64, TokenState)>;

    fn owner(&self) -> u16 {
        self.owner
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<Option<(u64, TokenState)>, Refusal> {
        let store = shard.store.borrow()?;
        let Some(user) = store.user_by_api_key(&self.hash)? else {
            return Ok(None);
        };
        assert_eq!(
            ids::shard_of(user.id),
            shard.id,
            "keys route to their user's shard"
        );
        Ok(store.token_state(user.id)?.map(|state| (user.id, state)))
    }
}
