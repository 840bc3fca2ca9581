//! Every name aiocr uses on NATS, in one place: subjects, the job stream, its consumers, the
//! key-value buckets and their keys.

use crate::recognition::Kind;

/// The JetStream work-queue stream of recognition jobs (`aiocr.jobs.>`).
pub const JOBS_STREAM: &str = "AIOCR_JOBS";
pub const JOBS_SUBJECTS: &str = "aiocr.jobs.>";
/// Heartbeats of the live nodes (`/v2/servers`), one key per node, expiring by `node_ttl_ms`.
pub const NODES_BUCKET: &str = "aiocr_nodes";
/// Usernames claimed across the platform, each with the node that owns the user.
pub const USERNAMES_BUCKET: &str = "aiocr_usernames";

/// Text jobs for the models users brought, whatever their name: any worker may take them
/// (it fetches the model's files by the digest the job carries).
pub const CUSTOM_JOBS_SUBJECT: &str = "aiocr.jobs.custom";

/// The object holding the files of the model of digest `digest_hex` that node `node` put in
/// the models bucket. Per node: a node deletes its objects when its last record of the
/// digest goes, and no node's removal takes away a model another node still names.
pub fn model_object(node: u16, digest_hex: &str) -> String {
    format!("{digest_hex}.n{node}")
}

/// The subject of a job: per kind, and for text captchas per model, so that a worker can
/// take only the models it has (or is meant to run). Models with characters a subject token
/// cannot hold are hex-encoded.
pub fn job_subject(kind: Kind, model: &str) -> String {
    match kind {
        Kind::Ocr => format!("aiocr.jobs.ocr.{}", token(model)),
        Kind::Detect => "aiocr.jobs.detect".to_string(),
        Kind::Slide => "aiocr.jobs.slide".to_string(),
    }
}

/// The durable pull consumer of one job subject, shared by every worker that takes it (a
/// work-queue stream allows one consumer per subject: the workers share it).
pub fn consumer_name(subject: &str) -> String {
    let name = subject.strip_prefix("aiocr.").unwrap_or(subject);
    name.replace('.', "-")
}

/// Where workers send results for node `node`.
pub fn results_subject(node: u16) -> String {
    format!("aiocr.results.{node}")
}

/// Where requests for node `node`'s users are forwarded.
pub fn node_subject(node: u16) -> String {
    format!("aiocr.node.{node}.http")
}

/// Where a forwarding node acknowledges the answers node `node` sent it.
pub fn node_ack_subject(node: u16) -> String {
    format!("aiocr.node.{node}.ack")
}

/// The key in the usernames bucket that says node `node` has claimed every name its store
/// holds in this bucket (missing in a bucket NATS made anew after losing its store).
pub fn claims_marker_key(node: u16) -> String {
    format!("n-{node}")
}

pub fn node_key(node: u16) -> String {
    format!("node-{node}")
}

/// The node id of a `node_key`.
pub fn node_of_key(key: &str) -> Option<u16> {
    key.strip_prefix("node-")?.parse().ok()
}

/// A username's key: hex, since usernames may hold `@` and dots that keys cannot.
pub fn username_key(username: &str) -> String {
    format!("u-{}", hex(username.as_bytes()))
}

fn token(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match plain {
        true => name.to_string(),
        false => format!("x{}", hex(name.as_bytes())),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_nats_tokens() {
        assert_eq!(job_subject(Kind::Ocr, "old"), "aiocr.jobs.ocr.old");
        assert_eq!(
            job_subject(Kind::Ocr, "my.model"),
            "aiocr.jobs.ocr.x6d792e6d6f64656c"
        );
        assert_eq!(job_subject(Kind::Detect, "detect"), "aiocr.jobs.detect");
        assert_eq!(consumer_name("aiocr.jobs.ocr.beta"), "jobs-ocr-beta");
        assert_eq!(consumer_name(CUSTOM_JOBS_SUBJECT), "jobs-custom");
        assert_eq!(model_object(3, "ab12"), "ab12.n3");
        assert_eq!(username_key("a.b@c"), "u-612e624063");
        assert_eq!(node_of_key(&node_key(17)), Some(17));
        assert_eq!(node_of_key("other"), None);
    }
}
