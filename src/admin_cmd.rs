//! Operator commands that open the data directory directly: `aiocr user add`,
//! `aiocr user key`, `aiocr points add`, `aiocr ledger verify`. A running server holds the shards' locks, so
//! these refuse clearly while it runs. Exit codes: 0 done/clean, 1 ledger problems found,
//! 2 usage or store error.

use crate::store::{ids, meta_shard_count, verify_ledger, Role, ShardStore, StoreError};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct UserArgs {
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user on its owner shard.
    Add {
        #[arg(long, env = "AIOCR_DATA", default_value = "./data")]
        data: PathBuf,
        #[arg(long)]
        username: String,
        #[arg(long)]
        password: String,
        /// user, developer or admin.
        #[arg(long, default_value = "user")]
        role: String,
        #[arg(long, default_value_t = 0)]
        points: i64,
        /// Shard count for a data directory that does not exist yet (else the recorded one).
        #[arg(long)]
        shards: Option<u16>,
        #[arg(long, default_value_t = 0)]
        node_id: u16,
        /// In a cluster: NATS, where the name is claimed for `--node-id` first, so that
        /// usernames stay unique across the platform (docs/cluster.md).
        #[arg(long, env = "AIOCR_NATS_URL")]
        nats: Option<String>,
    },
    /// Create or replace a user's API key and print it (alone, on stdout), or revoke it.
    Key {
        #[arg(long, env = "AIOCR_DATA", default_value = "./data")]
        data: PathBuf,
        #[arg(long)]
        username: String,
        /// Remove the user's key instead.
        #[arg(long)]
        revoke: bool,
    },
}

#[derive(Args)]
pub struct PointsArgs {
    #[command(subcommand)]
    command: PointsCommand,
}

#[derive(Subcommand)]
enum PointsCommand {
    /// Add (or with a negative number remove) points, journaled with a reason.
    Add {
        #[arg(long, env = "AIOCR_DATA", default_value = "./data")]
        data: PathBuf,
        #[arg(
            long,
            conflicts_with = "username",
            required_unless_present = "username"
        )]
        user_id: Option<u64>,
        #[arg(long)]
        username: Option<String>,
        #[arg(long, allow_negative_numbers = true)]
        points: i64,
        #[arg(long)]
        reason: String,
        #[arg(long, default_value_t = 0)]
        node_id: u16,
    },
}

#[derive(Args)]
pub struct LedgerArgs {
    #[command(subcommand)]
    command: LedgerCommand,
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Replay every journal and compare with every stored balance.
    Verify {
        #[arg(long, env = "AIOCR_DATA", default_value = "./data")]
        data: PathBuf,
    },
}

pub fn run_user(args: UserArgs) -> i32 {
    match args.command {
        UserCommand::Key {
            data,
            username,
            revoke,
        } => run_user_key(&data, &username, revoke),
        UserCommand::Add {
            data,
            username,
            password,
            role,
            points,
            shards,
            node_id,
            nats,
        } => {
            if let Some(url) = nats {
                if let Err(message) = claim_username(&url, node_id, &username) {
                    eprintln!("aiocr user add: {message}");
                    return 2;
                }
            }
            run_user_add(&data, &username, &password, &role, points, shards, node_id)
        }
    }
}

/// Claims `username` for node `node_id` in the cluster's registry.
fn claim_username(url: &str, node_id: u16, username: &str) -> Result<(), String> {
    crate::store::check_username(username)?;
    let mut config = crate::config::Config::default();
    config.cluster.nats_url = url.to_string();
    config.node.node_id = node_id;
    match crate::cluster::nats::claim_blocking(&config, username)? {
        crate::cluster::Claim::Granted => Ok(()),
        crate::cluster::Claim::Taken(node) => Err(format!(
            "username {username:?} belongs to a user of node {node}"
        )),
    }
}

fn run_user_key(data: &Path, username: &str, revoke: bool) -> i32 {
    let result = user_key(data, username, revoke);
    report_outcome(
        "user key",
        result.map(|key| match key {
            Some(key) => println!("{key}"),
            None => eprintln!("aiocr user key: the key of {username:?} is revoked"),
        }),
    )
}

fn run_user_add(
    data: &Path,
    username: &str,
    password: &str,
    role: &str,
    points: i64,
    shards: Option<u16>,
    node_id: u16,
) -> i32 {
    let Some(role) = Role::parse(role) else {
        eprintln!("aiocr user add: --role must be user, developer or admin");
        return 2;
    };
    let result = add_user(data, username, password, role, points, shards, node_id);
    report_outcome(
        "user add",
        result.map(|user_id| {
            println!(
                "created user {username:?} with id {user_id} ({} points)",
                points
            )
        }),
    )
}

pub fn run_points(args: PointsArgs) -> i32 {
    let PointsCommand::Add {
        data,
        user_id,
        username,
        points,
        reason,
        node_id,
    } = args.command;
    let result = add_points(
        &data,
        user_id,
        username.as_deref(),
        points,
        &reason,
        node_id,
    );
    report_outcome(
        "points add",
        result.map(|(user_id, balance)| {
            println!(
                "user {user_id}: points {} reserved {}",
                balance.points, balance.reserved
            )
        }),
    )
}

pub fn run_ledger(args: LedgerArgs) -> i32 {
    let LedgerCommand::Verify { data } = args.command;
    match verify_ledger(&data) {
        Ok(report) => {
            for problem in &report.problems {
                println!("{problem}");
            }
            println!(
                "ledger {}: {} shard(s), {} user(s), {} journal entries, {} problem(s)",
                if report.is_clean() {
                    "clean"
                } else {
                    "NOT clean"
                },
                report.shards_checked,
                report.users_checked,
                report.entries_replayed,
                report.problems.len()
            );
            i32::from(!report.is_clean())
        }
        Err(error) => {
            eprintln!("aiocr ledger verify: {error}");
            2
        }
    }
}

fn report_outcome(command: &str, result: Result<(), String>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("aiocr {command}: {error}");
            2
        }
    }
}

fn add_user(
    data: &Path,
    username: &str,
    password: &str,
    role: Role,
    points: i64,
    shards: Option<u16>,
    node_id: u16,
) -> Result<u64, String> {
    let shard_count = match (meta_shard_count(data).map_err(|e| e.to_string())?, shards) {
        (Some(recorded), _) => recorded,
        (None, Some(requested)) if (1..=ids::MAX_SHARDS).contains(&requested) => requested,
        (None, Some(requested)) => {
            return Err(format!(
                "--shards must be 1..={}, not {requested}",
                ids::MAX_SHARDS
            ))
        }
        (None, None) => {
            return Err(format!(
                "{} is not a data directory yet: pass --shards N to create it",
                data.display()
            ))
        }
    };
    crate::store::check_username(username)?;
    crate::auth::check_new_password(password)?;
    let hash = crate::auth::hash_password(password).map_err(|e| e.to_string())?;
    let shard = ids::shard_for_username(username, shard_count);
    let mut store =
        ShardStore::open(data, shard, shard_count, node_id).map_err(|e| e.to_string())?;
    let user_id = store
        .create_user(username, &hash, role, points, crate::clock::unix_now_ms())
        .map_err(|e| e.to_string())?;
    store.flusher().flush().map_err(|e| e.to_string())?;
    Ok(user_id)
}

/// Creates or replaces the user's key (`Some(key)`), or revokes it (`None`).
fn user_key(data: &Path, username: &str, revoke: bool) -> Result<Option<String>, String> {
    let shard_count = meta_shard_count(data)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{} is not a data directory", data.display()))?;
    let shard = ids::shard_for_username(username, shard_count);
    // The node id only matters for new ids; reading and writing keys issues none.
    let mut store = ShardStore::open(data, shard, shard_count, 0).map_err(|e| e.to_string())?;
    let user = store
        .user_by_name(username)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| StoreError::UserNotFound.to_string())?;
    let key = if revoke {
        store.revoke_api_key(user.id).map_err(|e| e.to_string())?;
        None
    } else {
        let key = crate::auth::new_api_key(ids::node_of(user.id), shard, shard_count)
            .map_err(|e| e.to_string())?;
        let hash = crate::auth::api_key_hash(&key);
        store
            .set_api_key(user.id, &hash, crate::clock::unix_now_ms())
            .map_err(|e| e.to_string())?;
        Some(key)
    };
    store.flusher().flush().map_err(|e| e.to_string())?;
    Ok(key)
}

fn add_points(
    data: &Path,
    user_id: Option<u64>,
    username: Option<&str>,
    points: i64,
    reason: &str,
    node_id: u16,
) -> Result<(u64, crate::store::Balance), String> {
    let shard_count = meta_shard_count(data)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{} is not a data directory", data.display()))?;
    let shard = match (user_id, username) {
        (Some(user_id), _) => ids::shard_of(user_id),
        (None, Some(username)) => ids::shard_for_username(username, shard_count),
        (None, None) => return Err("give --user-id or --username".into()),
    };
    if shard >= shard_count {
        return Err(StoreError::UserNotFound.to_string());
    }
    let mut store =
        ShardStore::open(data, shard, shard_count, node_id).map_err(|e| e.to_string())?;
    let user = match (user_id, username) {
        (Some(user_id), _) => store.user(user_id),
        (None, Some(username)) => store.user_by_name(username),
        (None, None) => unreachable!("checked above"),
    };
    let user = user
        .map_err(|e| e.to_string())?
        .ok_or_else(|| StoreError::UserNotFound.to_string())?;
    let balance = store
        .adjust_points(user.id, points, reason, crate::clock::unix_now_ms())
        .map_err(|e| e.to_string())?;
    store.flusher().flush().map_err(|e| e.to_string())?;
    Ok((user.id, balance))
}
