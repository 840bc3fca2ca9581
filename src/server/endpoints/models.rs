//! Models users bring (docs/models.md): `POST /v2/models` (multipart `name`, `onnx`,
//! `charsets`; `public=1` for admins), `GET /v2/models` (the caller's and the public ones),
//! `POST /v2/models/remove` (`name`).
//!
//! An upload is checked (engine::custom::check_model: it loads and runs the model) on a
//! thread of its own, at most `model_checks_max` at once on the node, never on a shard's
//! executor; its files are written there too. Then its record is kept on the owner shard and
//! the node's catalog (server/state/model_catalog.rs) makes it usable on every shard at once.
//! Another user's private model answers as a name that does not exist (3005).

use crate::contract::{self, ApiError};
use crate::engine::custom::{
    check_model, is_model_name, ModelDigest, ModelInfo, MAX_MODEL_NAME_BYTES,
};
use crate::server::call::{Call, Caller};
use crate::server::owner::{run_on_owner, OwnerCommand};
use crate::server::reply::{busy, internal, malformed, ok, ApiResult, Refusal};
use crate::server::shard::Shard;
use crate::server::state::{CatalogEntry, FilesPin};
use crate::store::{ModelRecord, Role, StoreError};
use serde_json::{json, Value};
use std::rc::Rc;
use std::sync::Arc;

/// A name a user may give a model: 1..=64 of `A-Z a-z 0-9 _ - .`, starting with a letter or
/// digit, and none the server gives a meaning already (its own models, what upload records
/// call detections and slides).
pub fn check_model_name(name: &str, builtin: &[String]) -> Result<(), Refusal> {
    if !is_model_name(name) {
        return Err(malformed(format!(
            "name must be 1 to {MAX_MODEL_NAME_BYTES} of A-Z a-z 0-9 _ - . starting with a \
             letter or digit"
        )));
    }
    if builtin.iter().any(|b| b == name) || name == "detect" || name.starts_with("slide-") {
        return Err(Refusal::new(
            ApiError::ModelExists,
            format!("{name:?} is a name of the server's own"),
        ));
    }
    Ok(())
}

/// A model upload, parsed: the two files and what to call the model.
struct NewModel {
    name: String,
    onnx: Vec<u8>,
    charsets: Vec<u8>,
    public: bool,
}

impl NewModel {
    fn parse(call: &Call, caller: &Caller) -> Result<NewModel, Refusal> {
        let mut fields = call.fields()?;
        let name = fields.required("name")?.trim().to_string();
        check_model_name(&name, &call.shard.shared.models)?;
        let public = fields.flag("public", false)?;
        if public && caller.role != Role::Admin {
            return Err(Refusal::new(
                ApiError::Forbidden,
                "only an admin makes a model public",
            ));
        }
        let charsets = match fields.take_file("charsets") {
            Some(bytes) => bytes,
            None => fields.required("charsets")?.as_bytes().to_vec(),
        };
        let onnx = fields
            .take_file("onnx")
            .ok_or_else(|| malformed("missing file part onnx"))?;
        if onnx.is_empty() {
            return Err(malformed("the onnx part is empty"));
        }
        Ok(NewModel {
            name,
            onnx,
            charsets,
            public,
        })
    }

    /// The record this upload makes, once its digest is known.
    fn record(&self, user_id: u64, digest: [u8; 32]) -> ModelRecord {
        ModelRecord {
            user_id,
            name: self.name.clone(),
            digest,
            onnx_bytes: self.onnx.len() as u64,
            charsets_bytes: self.charsets.len() as u64,
            created_at_ms: crate::clock::unix_now_ms(),
            public: self.public,
        }
    }
}

/// 3106 for a name the user has (or, for a public model, any public model has); 3107 beyond
/// the user's count or bytes.
fn check_room(shard: &Shard, record: &ModelRecord) -> Result<(), Refusal> {
    let catalog = &shard.shared.model_catalog;
    let limits = &shard.config().models;
    let (own, public) = catalog.name_taken(record.user_id, &record.name);
    if own || (record.public && public) {
        return Err(Refusal::new(
            ApiError::ModelExists,
            format!("a model named {:?} exists already", record.name),
        ));
    }
    let (count, bytes) = catalog.usage(record.user_id);
    if count >= limits.models_per_user
        || bytes.saturating_add(record.bytes()) > limits.model_bytes_per_user
    {
        return Err(Refusal::new(
            ApiError::ModelLimit,
            format!(
                "{count} models of {bytes} bytes kept; at most {} models and {} bytes",
                limits.models_per_user, limits.model_bytes_per_user
            ),
        ));
    }
    Ok(())
}

pub async fn add(call: &Call<'_>) -> ApiResult {
    let caller = call.caller().await?;
    let new = NewModel::parse(call, &caller)?;
    check_room(call.shard, &new.record(caller.user_id, [0; 32]))?;
    let shared = call.shard.shared.clone();
    // Taken before the check runs, given back when it ends: a bound on the node's memory and
    // cores spent on checks.
    let Some(place) = shared
        .model_catalog
        .check_place(call.shard.config().models.model_checks_max)
    else {
        return Err(busy());
    };
    let (info, entry, files) = check_and_keep(&shared, caller.user_id, new).await?;
    drop(place);
    let kept = run_on_owner(call.shard, KeepModel { entry }).await;
    // Kept, the record names the files now; refused (a name or a limit taken meanwhile),
    // nothing does and they go, unless another record of the same digest names them.
    drop(files);
    Ok(ok(&added_json(&kept?, &info)))
}

/// A checked model: what the check found, its catalog entry, and the hold on its files.
type Checked = (ModelInfo, CatalogEntry, FilesPin);

/// Runs the checks and writes the files on a thread of its own; the shard's task awaits it.
/// (Should the request go before the answer comes, the channel drops the pin with it.)
async fn check_and_keep(
    shared: &Arc<crate::server::shard::Shared>,
    user_id: u64,
    new: NewModel,
) -> Result<Checked, Refusal> {
    let (reply, answer) = flume::bounded(1);
    let shared_here = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("aiocr-model-check".into())
        .spawn(move || {
            let outcome = check_and_keep_blocking(&shared_here, user_id, new);
            // The request may be gone (its connection closed): nobody to tell.
            let _ = reply.send(outcome);
        });
    if let Err(error) = spawned {
        return Err(internal("model check thread", error));
    }
    match answer.recv_async().await {
        Ok(outcome) => outcome,
        Err(_) => Err(internal(
            "model check",
            "the check thread ended without an answer",
        )),
    }
}

fn check_and_keep_blocking(
    shared: &crate::server::shard::Shared,
    user_id: u64,
    new: NewModel,
) -> Result<Checked, Refusal> {
    let model_dir = &shared.config.node.model_dir;
    let info = check_model(model_dir, &new.onnx, &new.charsets).map_err(|error| {
        let code = contract::of_model_check(&error);
        match code {
            ApiError::Internal => internal("model check", &error),
            _ => Refusal::new(code, error.to_string()),
        }
    })?;
    let digest = ModelDigest::of(&new.onnx, &new.charsets);
    assert_eq!(digest, info.digest, "one digest for one pair of files");
    // Pinned before they are written (or found written): a removal of the last record of
    // the same digest meanwhile leaves them be.
    let files = shared.model_catalog.pin(digest);
    let model = shared
        .model_catalog
        .files()
        .keep(digest, &new.onnx, &new.charsets)
        .map_err(|e| internal("model files", e))?;
    // In a cluster, the workers get the files from the models bucket: put there before the
    // record is kept, so that the model's first job may go to them. A model not put there
    // still answers, on this node's threads.
    if let Some(objects) = shared.model_catalog.objects() {
        let paths = shared.model_catalog.files().paths(&digest);
        if let Err(error) = objects.put_and_wait(digest, paths) {
            log_line!(
                "aiocr: model {:?}: not in the cluster's models bucket ({error}); its jobs run on this node",
                new.name
            );
        }
    }
    let record = new.record(user_id, digest.0);
    Ok((info, CatalogEntry::new(record, model), files))
}

/// Keeps a checked model's record on its owner and adds it to the node's catalog.
struct KeepModel {
    entry: CatalogEntry,
}

impl OwnerCommand for KeepModel {
    type Output = CatalogEntry;

    fn owner(&self) -> u16 {
        crate::store::ids::shard_of(self.entry.record.user_id)
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<CatalogEntry, Refusal> {
        let entry = self.entry;
        let catalog = &shard.shared.model_catalog;
        // Checked again here, where a user's models change one at a time: another upload
        // of the same name or past the limits may have finished its checks meanwhile.
        check_room(&shard, &entry.record)?;
        let replaced = shard.store.borrow_mut()?.put_model(&entry.record)?;
        assert!(replaced.is_none(), "the catalog knows every record");
        catalog.insert(entry.clone());
        shard.commit.durable().await.map_err(StoreError::Io)?;
        Ok(entry)
    }
}

fn added_json(entry: &CatalogEntry, info: &ModelInfo) -> Value {
    let mut answer = entry_json(entry, entry.record.user_id);
    answer["input_shape"] = json!(info.input_shape);
    answer
}

/// A model as the API shows it.
fn entry_json(entry: &CatalogEntry, caller: u64) -> Value {
    let record = &entry.record;
    let spec = &entry.model.spec;
    json!({
        "name": record.name,
        "digest": entry.model.digest.hex(),
        "public": record.public,
        "own": record.user_id == caller,
        "charset_size": spec.charset.len(),
        "channels": spec.channels,
        "height": spec.input_height(),
        "width": spec.input_width(),
        "bytes": record.bytes(),
        "created_at": record.created_at_ms,
        "requests": entry.usage.requests(),
        "reports": entry.usage.reports(),
        "report_rate": entry.usage.report_rate(),
    })
}

pub async fn list(call: &Call<'_>) -> ApiResult {
    let caller = call.caller().await?;
    let catalog = &call.shard.shared.model_catalog;
    let limits = &call.shard.config().models;
    let entries = catalog.visible_to(caller.user_id);
    let (count, bytes) = catalog.usage(caller.user_id);
    let models: Vec<Value> = entries
        .iter()
        .map(|entry| entry_json(entry, caller.user_id))
        .collect();
    Ok(ok(&json!({
        "models": models,
        "usage": {
            "models": count,
            "bytes": bytes,
            "max_models": limits.models_per_user,
            "max_bytes": limits.model_bytes_per_user,
        },
    })))
}

/// Removes a user's model: its record on the owner, then from the node's catalog.
struct RemoveModel {
    user_id: u64,
    name: String,
}

impl OwnerCommand for RemoveModel {
    type Output = bool;

    fn owner(&self) -> u16 {
        crate::store::ids::shard_of(self.user_id)
    }

    async fn apply(self, shard: Rc<Shard>) -> Result<bool, Refusal> {
        let removed = shard
            .store
            .borrow_mut()?
            .remove_model(self.user_id, &self.name)?;
        if removed.is_none() {
            return Ok(false);
        }
        shard.shared.model_catalog.remove(self.user_id, &self.name);
        shard.commit.durable().await.map_err(StoreError::Io)?;
        Ok(true)
    }
}

pub async fn remove(call: &Call<'_>) -> ApiResult {
    let caller = call.caller().await?;
    let fields = call.fields()?;
    let name = fields.required("name")?.trim().to_string();
    let request = RemoveModel {
        user_id: caller.user_id,
        name: name.clone(),
    };
    if !run_on_owner(call.shard, request).await? {
        // The same answer for another user's model as for a name nobody uses.
        return Err(Refusal::new(
            ApiError::UnknownModel,
            format!("no model named {name:?}"),
        ));
    }
    Ok(ok(&json!({ "removed": name })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names() {
        let builtin = vec!["old".to_string(), "beta".to_string()];
        for good in ["lib", "my-model_2.v1", "9x", &"a".repeat(64)] {
            assert!(check_model_name(good, &builtin).is_ok(), "{good}");
        }
        for bad in ["", "-x", ".x", "a b", "a/b", "é", &"a".repeat(65)] {
            assert_eq!(
                check_model_name(bad, &builtin).unwrap_err().error,
                ApiError::Malformed,
                "{bad}"
            );
        }
        for taken in ["old", "beta", "detect", "slide-match"] {
            assert_eq!(
                check_model_name(taken, &builtin).unwrap_err().error,
                ApiError::ModelExists,
                "{taken}"
            );
        }
    }
}
