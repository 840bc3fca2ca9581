//! The configuration's loading, precedence, typed values and bounds.

use super::keys::KEY_ALIASES;
use super::*;
use crate::recognition::ThreadPriority;
use crate::store::ids;
use std::net::SocketAddr;

#[test]
fn defaults_validate() {
    let config = Config::load(None, &[], &[]).unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.network.listen.port(), 8080);
    assert_eq!(config.network.metrics_listen, None);
    assert_eq!(config.images.image_limits().max_pixels, 2_000_000);
}

#[test]
fn a_rate_limit_of_0_disables_the_per_user_buckets_and_a_burst_of_0_needs_it() {
    let set = |pairs: &[(&str, &str)]| {
        let flags: Vec<(&str, String)> = pairs.iter().map(|(k, v)| (*k, v.to_string())).collect();
        Config::load(None, &[], &flags)
    };
    let unlimited = set(&[("rate_limit_per_sec", "0")]).unwrap();
    assert_eq!(unlimited.uploads.rate_limit_per_sec, 0);
    assert!(set(&[("rate_limit_per_sec", "0"), ("rate_limit_burst", "0")]).is_ok());
    let refused = set(&[("rate_limit_burst", "0")]).unwrap_err();
    assert!(refused.contains("rate_limit_burst"), "{refused}");
    assert!(set(&[("storage_probe_ms", "0")]).is_err());
    assert!(set(&[("storage_probe_ms", "600"), ("storage_probe_max_ms", "500")]).is_err());
    assert!(set(&[("store_cache_mb", "0")]).is_err());
    assert!(set(&[("store_cache_mb", "4")]).is_ok());
}

#[test]
fn every_key_is_a_field() {
    // A table with every key set to a value of its kind must deserialize (deny_unknown_fields
    // on each section catches a key in its KEYS that is not a field).
    let mut table = toml::Table::new();
    for (key, kind) in all_keys() {
        let value = match (key, kind) {
            (&"recognition_cores", _) => toml::Value::String("1".into()),
            (&"recognition_priority" | &"password_hash_priority", _) => {
                toml::Value::String("idle".into())
            }
            (&"price_per_point", _) => toml::Value::String("0.5".into()),
            (&"recognition_split", _) => toml::Value::String("remote".into()),
            (&"mcp_allowed_origins", _) => toml::Value::String("http://127.0.0.1:1".into()),
            (_, Kind::Text) => toml::Value::String("127.0.0.1:1".into()),
            (_, Kind::Number) => toml::Value::Integer(1),
            (_, Kind::Flag) => toml::Value::Boolean(true),
        };
        table.insert(key.to_string(), value);
    }
    let parsed = Config::from_table(&table);
    assert!(parsed.is_ok(), "{parsed:?}");
    for (_, key) in KEY_ALIASES.iter().chain(ENV_ALIASES) {
        assert!(all_keys().any(|(known, _)| known == key), "{key}");
    }
    // A key belongs to one section: a second would read the same value into another field.
    for (key, _) in all_keys() {
        assert_eq!(
            all_keys().filter(|(known, _)| known == key).count(),
            1,
            "{key}"
        );
    }
}

#[test]
fn precedence_file_env_flags() {
    let dir = std::env::temp_dir().join(format!("aiocr-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("aiocr.toml");
    std::fs::write(
        &file,
        "shards = 3\nqueue_len = 7\nlisten = \"127.0.0.1:9000\"\naccel_cores = \"1, 2\"\n",
    )
    .unwrap();
    let env = vec![
        ("AIOCR_QUEUE_LEN".to_string(), "9".to_string()),
        ("AIOCR_DATA".to_string(), "/tmp/d".to_string()),
        ("AIOCR_JWT_SECRET".to_string(), "12345".to_string()),
        (
            "AIOCR_MAX_CONNECTIONS_PER_SHARD".to_string(),
            "55".to_string(),
        ),
        ("AIOCR_MAX_CONNECTIONS".to_string(), "77".to_string()),
        ("OTHER".to_string(), "x".to_string()),
    ];
    let flags = [("shards", "2".to_string())];
    let config = Config::load(Some(&file), &env, &flags).unwrap();
    assert_eq!((config.node.shards, config.recognition.queue_len), (2, 9));
    assert_eq!(
        config.network.listen,
        "127.0.0.1:9000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.store.data_dir, PathBuf::from("/tmp/d"));
    assert_eq!(config.auth.jwt_secret, "12345");
    assert_eq!(config.recognition.recognition_cores, vec![1, 2]);
    // The key's own environment name wins over the short alias, whatever the order.
    assert_eq!(config.network.max_connections_per_shard, 55);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn typed_values_and_their_defaults() {
    let config = Config::load(
        None,
        &[],
        &[
            ("accel_priority", "nice:5".to_string()),
            ("recognition_cores", "".to_string()),
        ],
    )
    .unwrap();
    assert_eq!(
        config.recognition.recognition_priority,
        Some(ThreadPriority::Nice(5))
    );
    assert_eq!(config.recognition.recognition_cores(&[0, 1]), vec![0, 1]);
    assert_eq!(config.recognition.recognition_cores(&[]), vec![0]);
    assert_eq!(
        Config::default().recognition.recognition_priority(true),
        ThreadPriority::Idle
    );
    assert_eq!(
        Config::default().recognition.recognition_priority(false),
        ThreadPriority::Normal
    );
    assert!(Config::default().node.shard_count() <= ids::MAX_SHARDS);
    let config = Config::default();
    assert_eq!(
        config.login.password_hash_priority,
        ThreadPriority::Nice(10)
    );
    assert_eq!(
        (1..=16)
            .map(|cores| config.login.password_hash_threads(cores))
            .collect::<Vec<_>>(),
        [1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4]
    );
    let set = Config::load(
        None,
        &[],
        &[
            ("password_hash_threads", "3".to_string()),
            ("password_hash_priority", "normal".to_string()),
        ],
    )
    .unwrap();
    assert_eq!(set.login.password_hash_threads(16), 3);
    assert_eq!(set.login.password_hash_priority, ThreadPriority::Normal);
}

#[test]
fn refuses_bad_values() {
    let bad_env = vec![("AIOCR_SHARDS".to_string(), "many".to_string())];
    assert!(Config::load(None, &bad_env, &[]).is_err());
    let refused = |key: &str, value: &str| Config::load(None, &[], &[(key, value.into())]);
    assert!(refused("shards", "17").is_err());
    assert!(refused("node_id", "64").is_err());
    assert!(refused("listen", "nowhere").is_err());
    assert!(refused("metrics_listen", "nowhere").is_err());
    assert!(refused("recognition_cores", "1,x").is_err());
    assert!(refused("recognition_priority", "nice:40").is_err());
    assert!(refused("shard_inbox_len", "0").is_err());
    assert!(refused("price_per_point", "0.0000001").is_err());
    assert!(
        refused("upload_cost", "9007199254740992").is_err(),
        "past 2^53 - 1"
    );
    assert!(refused("slide_cost", "-1").is_err());
    assert!(refused("detect_cost", "9007199254740991").is_ok());
    assert!(refused("callback_allow", "nohost").is_err());
    assert!(refused("password_hash_queue_len", "0").is_err());
    assert!(refused("password_hash_priority", "").is_err());
    assert!(refused("login_backoff_base_ms", "0").is_err());
    assert!(
        refused("login_backoff_max_ms", "999").is_err(),
        "below the base"
    );
    assert!(
        refused("login_backoff_forget_secs", "59").is_err(),
        "shorter than a lock"
    );
    assert!(refused("mcp_allowed_origins", "agent.example").is_err());
    assert!(refused("mcp_allowed_origins", "https://agent.example/path").is_err());
    assert!(refused("mcp_sessions_per_user", "0").is_err());
    assert!(
        refused("mcp_sessions_per_user", "5000").is_err(),
        "above per shard"
    );
    assert!(refused("mcp_session_idle_secs", "0").is_err());
    // Above wait_timeout_ms_max is taken (the smaller of the two applies to a reading's
    // wait): lowering wait_timeout_ms_max alone must not make the server refuse to start.
    assert!(refused("mcp_wait_ms", "30001").is_ok());
    assert!(refused("wait_timeout_ms_max", "5000").is_ok());
    assert!(refused("mcp_max_body_bytes", "0").is_err());
    // Above max_body_bytes is taken (the smaller of the two applies to /mcp): lowering
    // max_body_bytes alone must not make the default mcp_max_body_bytes refuse to start.
    assert!(refused("mcp_max_body_bytes", "1048577").is_ok());
    assert!(refused("max_body_bytes", "600000").is_ok());
    let origins = refused(
        "mcp_allowed_origins",
        "https://Agent.Example, http://127.0.0.1:6274",
    );
    assert_eq!(
        origins.unwrap().mcp.mcp_allowed_origins,
        vec!["https://agent.example", "http://127.0.0.1:6274"]
    );
    let callbacks = refused("callback_allow", "127.0.0.1:9000, Hooks.Local:80").unwrap();
    assert_eq!(
        callbacks.compat.callback_allow,
        vec![
            ("127.0.0.1".to_string(), 9000),
            ("hooks.local".to_string(), 80)
        ]
    );
    let separate = refused("metrics_listen", "127.0.0.1:9100").unwrap();
    assert_eq!(
        separate.network.metrics_listen,
        Some("127.0.0.1:9100".parse().unwrap())
    );
    let dir = std::env::temp_dir().join(format!("aiocr-config-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("aiocr.toml");
    std::fs::write(&file, "shard = 3\n").unwrap();
    assert!(Config::load(Some(&file), &[], &[])
        .unwrap_err()
        .contains("unknown field"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tls_is_all_or_nothing() {
    let load = |pairs: &[(&str, &str)]| {
        let flags: Vec<(&str, String)> = pairs.iter().map(|(k, v)| (*k, v.to_string())).collect();
        Config::load(None, &[], &flags)
    };
    let all = [
        ("tls_listen", "127.0.0.1:8443"),
        ("tls_cert", "/etc/aiocr/cert.pem"),
        ("tls_key", "/etc/aiocr/key.pem"),
    ];
    let config = load(&all).unwrap();
    assert_eq!(
        config.network.tls_files(),
        Some((
            Path::new("/etc/aiocr/cert.pem"),
            Path::new("/etc/aiocr/key.pem")
        ))
    );
    assert_eq!(config.network.tls_handshake_timeout_ms, 10_000);
    assert_eq!(Config::default().network.tls_files(), None);
    for missing in 0..all.len() {
        let mut partial = all.to_vec();
        partial.remove(missing);
        let error = load(&partial).unwrap_err();
        assert!(error.contains("all three"), "{error}");
    }
    let error = load(&[("tls_cert", "/etc/aiocr/cert.pem")]).unwrap_err();
    assert!(
        error.contains("tls_listen, tls_cert and tls_key"),
        "{error}"
    );
    let mut same_port = all.to_vec();
    same_port.push(("listen", "127.0.0.1:8443"));
    assert!(load(&same_port).unwrap_err().contains("must differ"));
    let mut zero = all.to_vec();
    zero.push(("tls_handshake_timeout_ms", "0"));
    assert!(load(&zero).is_err());
    let mut any_port = all.to_vec();
    any_port[0].1 = "127.0.0.1:0";
    any_port.push(("listen", "127.0.0.1:0"));
    assert!(load(&any_port).is_ok(), "port 0 resolves to two free ports");
}
