//! One request as endpoints see it: the shard it arrived on, its head and body, its fields,
//! and the authenticated caller.

use super::fields::{body_kind, Fields};
use super::reply::Refusal;
use super::shard::Shard;
use crate::contract::ApiError;
use crate::http::RequestHead;
use crate::store::{ids, Role};
use std::borrow::Cow;
use std::rc::Rc;

pub struct Call<'a> {
    /// The shard the connection is on (not necessarily the caller's owner).
    pub shard: &'a Rc<Shard>,
    pub head: &'a RequestHead,
    pub body: Vec<u8>,
}

/// The authenticated caller.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub user_id: u64,
    pub role: Role,
    /// The shard that owns the caller's data.
    pub owner: u16,
}

impl Call<'_> {
    /// The call's fields: query plus a JSON, form or multipart body.
    pub fn fields(&self) -> Result<Fields, Refusal> {
        let mut fields = Fields::from_query(&self.head.query)?;
        let content_type = self.head.content_type.as_deref();
        fields.add_body(
            body_kind(content_type, &self.body),
            content_type,
            &self.body,
        )?;
        Ok(fields)
    }

    /// The JWT from `Authorization: Bearer` or `?token=`, verified (1002 absent, 1003
    /// invalid or for a user this deployment cannot own).
    pub fn caller(&self) -> Result<Caller, Refusal> {
        let token = bearer_token(self.head)?;
        let claims = self
            .shard
            .token_cache
            .borrow_mut()
            .verify(&self.shard.shared.keys, &token)
            .map_err(|_| Refusal::from(ApiError::BadToken))?;
        let user_id: u64 = claims
            .sub
            .parse()
            .map_err(|_| Refusal::from(ApiError::BadToken))?;
        let owner = ids::shard_of(user_id);
        if owner >= self.shard.shard_count() {
            // Signed by us but for another shard layout: not a token of this deployment.
            return Err(ApiError::BadToken.into());
        }
        Ok(Caller {
            user_id,
            role: claims.role,
            owner,
        })
    }

    /// The caller, if it has one of `roles` (1005 otherwise).
    pub fn caller_with_role(&self, roles: &[Role]) -> Result<Caller, Refusal> {
        let caller = self.caller()?;
        if !roles.contains(&caller.role) {
            return Err(ApiError::Forbidden.into());
        }
        Ok(caller)
    }
}

fn bearer_token(head: &RequestHead) -> Result<Cow<'_, str>, Refusal> {
    if let Some(value) = &head.authorization {
        let (scheme, token) = value.split_once(' ').unwrap_or((value.as_str(), ""));
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
