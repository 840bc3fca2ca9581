//! The names a key goes by outside a TOML file: `AIOCR_<KEY>` environment variables (and a
//! few older or shorter names), `--set key=value`, and the earlier spellings of keys still
//! accepted everywhere. Text from the environment or a flag is typed here by the key's
//! [`Kind`] before the sections read it.

use std::path::Path;

/// What kind of text a key's environment or `--set` value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    Number,
    Flag,
}

/// Earlier names of keys, still accepted everywhere a key is (file, environment, `--set`).
pub const KEY_ALIASES: &[(&str, &str)] = &[
    ("accel_cores", "recognition_cores"),
    ("accel_priority", "recognition_priority"),
    ("accel_wide_threads", "recognition_wide_threads"),
];

/// Environment names that differ from `AIOCR_<KEY>`: shared with other commands (the engine
/// reads AIOCR_MODEL_DIR, operators expect AIOCR_DATA) or shorter. `AIOCR_<KEY>` wins when
/// both are set.
pub const ENV_ALIASES: &[(&str, &str)] = &[
    ("AIOCR_DATA", "data_dir"),
    ("AIOCR_MODEL_DIR", "model_dir"),
    ("AIOCR_MAX_CONNECTIONS", "max_connections_per_shard"),
];

/// The key's own name for an earlier spelling; any other name unchanged.
pub fn canonical_key(name: &str) -> &str {
    KEY_ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, key)| key)
}

/// The lower-case key an `AIOCR_<KEY>` variable names, in its own spelling (not checked
/// against the keys: the caller does that).
pub fn env_key_name(name: &str) -> Option<String> {
    let lower = name.strip_prefix("AIOCR_")?.to_ascii_lowercase();
    Some(canonical_key(&lower).to_string())
}

/// The TOML value of `text` for a key of this kind (`None`: no such key).
pub fn typed_value(key: &str, kind: Option<Kind>, text: &str) -> Result<toml::Value, String> {
    let bad = || format!("config: {key}={text:?} is not valid");
    match kind {
        Some(Kind::Text) => Ok(toml::Value::String(text.to_string())),
        Some(Kind::Number) => text
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| bad()),
        Some(Kind::Flag) => match text.trim() {
            "1" | "true" | "yes" | "on" => Ok(toml::Value::Boolean(true)),
            "0" | "false" | "no" | "off" => Ok(toml::Value::Boolean(false)),
            _ => Err(bad()),
        },
        None => Err(format!("config: unknown key {key}")),
    }
}

/// The configuration file's keys and values.
pub fn read_table(path: &Path) -> Result<toml::Table, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("config {}: {e}", path.display()))?;
    text.parse::<toml::Table>()
        .map_err(|e| format!("config {}: {e}", path.display()))
}
