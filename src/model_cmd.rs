//! `aiocr model add|list|remove`: models users brought, managed on a data directory while
//! the server is stopped (a running server holds the shards' locks; use `POST /v2/models`
//! then). `add` runs the same checks as the API; the per-user limits are the API's, not an
//! operator's. Exit codes: 0 done, 2 usage, check or store error.

use crate::engine::custom::{check_model, is_model_name, ModelDigest, ModelFiles};
use crate::store::{ids, meta_shard_count, ModelRecord, ShardStore};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    command: ModelCommand,
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Check a dddd_trainer model (ONNX file and charsets.json) and give it to a user.
    Add {
        #[arg(long, env = "AIOCR_DATA", default_value = "./data")]
        data: PathBuf,
        /// Where ONNX Runtime is (the checks load and run the model).
        #[arg(long, env = "AIOCR_MODEL_DIR", default_value = "models")]
        model_dir: PathBuf,
        #[arg(long)]
        username: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        onnx: PathBuf,
        #[arg(long)]
        charsets: PathBuf,
        /// Usable by every user.
        #[arg(long)]
        public: bool,
    },
    /// List every user's models (or one user's).
    List {
        #[arg(long, env = "AIOCR_DATA", default_value = "./data")]
        data: PathBuf,
        #[arg(long)]
        username: Option<String>,
    },
    /// Remove a user's model (its files go with the last model that names them).
    Remove {
        #[arg(long, env = "AIOCR_DATA", default_value = "./data")]
        data: PathBuf,
        #[arg(long)]
        username: String,
        #[arg(long)]
        name: String,
    },
}

pub fn run(args: ModelArgs) -> i32 {
    let outcome = match args.command {
        ModelCommand::Add {
            data,
            model_dir,
            username,
            name,
            onnx,
            charsets,
            public,
        } => add(
            &data,
            &model_dir,
            &username,
            &name,
            (&onnx, &charsets),
            public,
        ),
        ModelCommand::List { data, username } => list(&data, username.as_deref()),
        ModelCommand::Remove {
            data,
            username,
            name,
        } => remove(&data, &username, &name),
    };
    match outcome {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("aiocr model: {error}");
            2
        }
    }
}

/// Every shard of the data directory, opened (the node id only matters for new ids, and
/// these commands issue none).
fn open_all(data: &Path) -> Result<Vec<ShardStore>, String> {
    let shard_count = meta_shard_count(data)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{} is not a data directory", data.display()))?;
    (0..shard_count)
        .map(|shard| ShardStore::open(data, shard, shard_count, 0).map_err(|e| e.to_string()))
        .collect()
}

/// The store of `username`'s shard, and the user's id.
fn owner_of<'s>(
    stores: &'s mut [ShardStore],
    username: &str,
) -> Result<(&'s mut ShardStore, u64), String> {
    let shard = ids::shard_for_username(username, stores.len() as u16);
    let store = &mut stores[usize::from(shard)];
    let user = store
        .user_by_name(username)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no user {username:?}"))?;
    Ok((store, user.id))
}

fn files_of(data: &Path) -> Result<ModelFiles, String> {
    let dir = data.join("models");
    ModelFiles::open(&dir).map_err(|e| format!("{}: {e}", dir.display()))
}

fn add(
    data: &Path,
    model_dir: &Path,
    username: &str,
    name: &str,
    (onnx_path, charsets_path): (&Path, &Path),
    public: bool,
) -> Result<(), String> {
    if !is_model_name(name)
        || crate::engine::available_models(model_dir)
            .iter()
            .any(|m| m == name)
    {
        return Err(format!("{name:?} is not a name a model may take"));
    }
    let read = |path: &Path| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
    let (onnx, charsets) = (read(onnx_path)?, read(charsets_path)?);
    let info = check_model(model_dir, &onnx, &charsets).map_err(|error| {
        let code = crate::contract::of_model_check(&error).code();
        format!("model refused ({code}): {error}")
    })?;
    let mut stores = open_all(data)?;
    let all = all_records(&stores)?;
    if public && all.iter().any(|r| r.public && r.name == name) {
        return Err(format!("a public model is named {name:?} already"));
    }
    let (store, user_id) = owner_of(&mut stores, username)?;
    if all.iter().any(|r| r.user_id == user_id && r.name == name) {
        return Err(format!("{username:?} has a model named {name:?} already"));
    }
    files_of(data)?.keep(info.digest, &onnx, &charsets)?;
    let record = ModelRecord {
        user_id,
        name: name.to_string(),
        digest: info.digest.0,
        onnx_bytes: onnx.len() as u64,
        charsets_bytes: charsets.len() as u64,
        created_at_ms: crate::clock::unix_now_ms(),
        public,
    };
    store.put_model(&record).map_err(|e| e.to_string())?;
    store.flusher().flush().map_err(|e| e.to_string())?;
    println!(
        "added model {name:?} for {username:?}: digest {}, input {:?}, {} classes",
        info.digest, info.input_shape, info.charset_len
    );
    Ok(())
}

fn all_records(stores: &[ShardStore]) -> Result<Vec<ModelRecord>, String> {
    let mut records = Vec::new();
    for store in stores {
        records.extend(store.all_models().map_err(|e| e.to_string())?);
    }
    Ok(records)
}

fn list(data: &Path, username: Option<&str>) -> Result<(), String> {
    let mut stores = open_all(data)?;
    let only = match username {
        Some(username) => Some(owner_of(&mut stores, username)?.1),
        None => None,
    };
    println!("user_id\tname\tdigest\tbytes\tpublic");
    for record in all_records(&stores)? {
        if only.is_some_and(|user_id| user_id != record.user_id) {
            continue;
        }
        println!(
            "{}\t{}\t{}\t{}\t{}",
            record.user_id,
            record.name,
            ModelDigest(record.digest),
            record.bytes(),
            record.public
        );
    }
    Ok(())
}

fn remove(data: &Path, username: &str, name: &str) -> Result<(), String> {
    let mut stores = open_all(data)?;
    let (store, user_id) = owner_of(&mut stores, username)?;
    let removed = store
        .remove_model(user_id, name)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{username:?} has no model named {name:?}"))?;
    store.flusher().flush().map_err(|e| e.to_string())?;
    let still_named = all_records(&stores)?
        .iter()
        .any(|record| record.digest == removed.digest);
    if !still_named {
        files_of(data)?.delete(&ModelDigest(removed.digest));
    }
    println!("removed model {name:?} of {username:?}");
    Ok(())
}
