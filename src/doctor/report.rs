//! The doctor's verdicts: one line per check, as text for people and JSON for tools.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Status {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "WARN")]
    Warn,
    #[serde(rename = "FAIL")]
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One finding: what was checked, what was found, and (unless OK) how to fix it.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The settings the checks were run against, echoed so a report stands on its own.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub shards: usize,
    pub max_connections_per_shard: usize,
    pub backlog: u32,
    pub model_dir: String,
    pub data_dir: String,
}

#[derive(Serialize)]
struct Summary {
    ok: usize,
    warn: usize,
    fail: usize,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    /// True when nothing FAILed (the exit code is 0 exactly then).
    ok: bool,
    summary: Summary,
    settings: &'a Settings,
    checks: &'a [Check],
}

pub fn has_failure(checks: &[Check]) -> bool {
    checks.iter().any(|check| check.status == Status::Fail)
}

fn count(checks: &[Check], status: Status) -> usize {
    checks.iter().filter(|check| check.status == status).count()
}

pub fn to_json(settings: &Settings, checks: &[Check]) -> String {
    let report = JsonReport {
        ok: !has_failure(checks),
        summary: Summary {
            ok: count(checks, Status::Ok),
            warn: count(checks, Status::Warn),
            fail: count(checks, Status::Fail),
        },
        settings,
        checks,
    };
    serde_json::to_string_pretty(&report).expect("the report is plain data")
}

pub fn to_text(settings: &Settings, checks: &[Check]) -> String {
    let mut text = format!(
        "aiocr doctor: shards {}, max connections per shard {}, backlog {}, models {}, data {}\n",
        settings.shards,
        settings.max_connections_per_shard,
        settings.backlog,
        settings.model_dir,
        settings.data_dir
    );
    for check in checks {
        text.push_str(&format!(
            "{:<4}  {:<11} {}\n",
            check.status.label(),
            check.name,
            check.detail
        ));
        if let Some(fix) = &check.fix {
            text.push_str(&format!("{:<4}  {:<11} fix: {}\n", "", "", fix));
        }
    }
    text.push_str(&format!(
        "{} OK, {} WARN, {} FAIL\n",
        count(checks, Status::Ok),
        count(checks, Status::Warn),
        count(checks, Status::Fail)
    ));
    text
}
