//! The bytes aiocr puts on NATS. A message with images is a frame: a 4-byte big-endian
//! length, a JSON header of that length, then the raw payloads the header gives the lengths
//! of (images travel as they came, never as base64). Results are small: JSON alone.

use crate::contract::ApiError;
use crate::engine::{
    Answer, CharsetRange, ColorFilter, Reading, RecognizeOptions, SlideAnswer, SlideMode,
};
use crate::http::Response;
use crate::recognition::{ClickHint, Job, JobAnswer, JobFailure, Kind, Task};
use serde::{Deserialize, Serialize};

/// The parts of a job a worker needs (the answer cache's key and the answer's constraints
/// stay with the node, which applies them when the result is back).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct JobHeader {
    pub upload_id: u64,
    /// The node whose shard holds the reservation: results go to its subject.
    pub node: u16,
    pub shard: u16,
    /// Unix ms after which the node has failed and refunded the job: a worker drops it unrun.
    pub deadline_ms: u64,
    pub task: TaskHeader,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskHeader {
    Ocr {
        image_len: usize,
        model: String,
        png_fix: bool,
        probability: bool,
        charset_first: Option<usize>,
        charset_chars: Option<String>,
        /// The colour filter's HSV ranges as `color_ranges` JSON (the filter rebuilds
        /// exactly from them: it is their union).
        color_ranges: Option<String>,
        /// How the scores become the answer (absent: ddddocr's argmax).
        #[serde(default)]
        reading: Reading,
        /// A user's model (`model` is then its user's name for it): the digest of its
        /// files, which the worker fetches from the models bucket (cluster/model_transfer.rs).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model_digest: Option<String>,
    },
    Detect {
        image_len: usize,
    },
    /// A click captcha; the hint image, if any, is the second payload.
    Click {
        image_len: usize,
        hint_text: Option<String>,
        hint_image_len: Option<usize>,
        rectangles: bool,
    },
    Slide {
        target_len: usize,
        background_len: usize,
        mode: String,
    },
}

/// A job as bytes.
pub fn encode_job(job: &Job, node: u16, deadline_ms: u64) -> Vec<u8> {
    let (task, payloads): (TaskHeader, Vec<&[u8]>) = match &job.task {
        Task::Ocr { image, options } => (
            TaskHeader::Ocr {
                image_len: image.len(),
                model: options.model.clone(),
                png_fix: options.png_fix,
                probability: options.probability,
                charset_first: match &options.charset_range {
                    Some(CharsetRange::FirstEntries(n)) => Some(*n),
                    _ => None,
                },
                charset_chars: match &options.charset_range {
                    Some(CharsetRange::Characters(chars)) => Some(chars.clone()),
                    _ => None,
                },
                color_ranges: options.color_filter.as_ref().map(ranges_json),
                reading: options.reading.clone(),
                model_digest: options.custom.as_ref().map(|model| model.digest.hex()),
            },
            vec![image],
        ),
        Task::Detect { image } => (
            TaskHeader::Detect {
                image_len: image.len(),
            },
            vec![image],
        ),
        Task::Click {
            image,
            hint,
            rectangles,
        } => {
            let (hint_text, hint_image) = match hint {
                ClickHint::Text(text) => (Some(text.clone()), None),
                ClickHint::Image(image) => (None, Some(image.as_slice())),
                ClickHint::Nothing => (None, None),
            };
            let header = TaskHeader::Click {
                image_len: image.len(),
                hint_text,
                hint_image_len: hint_image.map(<[u8]>::len),
                rectangles: *rectangles,
            };
            (
                header,
                [Some(image.as_slice()), hint_image]
                    .into_iter()
                    .flatten()
                    .collect(),
            )
        }
        Task::Slide {
            target,
            background,
            mode,
        } => (
            TaskHeader::Slide {
                target_len: target.len(),
                background_len: background.len(),
                mode: slide_mode_name(*mode).to_string(),
            },
            vec![target, background],
        ),
    };
    let header = JobHeader {
        upload_id: job.upload_id,
        node,
        shard: job.owner_shard,
        deadline_ms,
        task,
    };
    frame(&header, &payloads)
}

/// A job from bytes: its header and the task to run.
pub fn decode_job(bytes: &[u8]) -> Result<(JobHeader, Task), String> {
    let (header, rest): (JobHeader, &[u8]) = unframe(bytes)?;
    let task = match &header.task {
        TaskHeader::Ocr {
            image_len,
            model,
            png_fix,
            probability,
            charset_first,
            charset_chars,
            color_ranges,
            reading,
            model_digest: _, // resolved by the worker (the files may have to be fetched)
        } => {
            let [image] = split(rest, [*image_len])?;
            let charset_range = match (charset_first, charset_chars) {
                (Some(n), None) => Some(CharsetRange::FirstEntries(*n)),
                (None, Some(chars)) => Some(CharsetRange::Characters(chars.clone())),
                (None, None) => None,
                _ => return Err("a charset range is one of its two forms".into()),
            };
            let color_filter = ColorFilter::from_options(None, color_ranges.as_deref())
                .map_err(|e| format!("colour ranges: {e}"))?;
            let options = RecognizeOptions {
                model: model.clone(),
                custom: None,
                png_fix: *png_fix,
                probability: *probability,
                charset_range,
                color_filter,
                reading: reading.clone(),
            };
            Task::Ocr {
                image: image.to_vec(),
                options,
            }
        }
        TaskHeader::Detect { image_len } => {
            let [image] = split(rest, [*image_len])?;
            Task::Detect {
                image: image.to_vec(),
            }
        }
        TaskHeader::Click {
            image_len,
            hint_text,
            hint_image_len,
            rectangles,
        } => {
            let (image, hint) = match (hint_text, hint_image_len) {
                (Some(text), None) => {
                    let [image] = split(rest, [*image_len])?;
                    (image, ClickHint::Text(text.clone()))
                }
                (None, Some(hint_len)) => {
                    let [image, hint] = split(rest, [*image_len, *hint_len])?;
                    (image, ClickHint::Image(hint.to_vec()))
                }
                (None, None) => {
                    let [image] = split(rest, [*image_len])?;
                    (image, ClickHint::Nothing)
                }
                _ => return Err("a click hint is text or an image, not both".into()),
            };
            Task::Click {
                image: image.to_vec(),
                hint,
                rectangles: *rectangles,
            }
        }
        TaskHeader::Slide {
            target_len,
            background_len,
            mode,
        } => {
            let [target, background] = split(rest, [*target_len, *background_len])?;
            Task::Slide {
                target: target.to_vec(),
                background: background.to_vec(),
                mode: SlideMode::parse(mode).ok_or_else(|| format!("slide mode {mode:?}"))?,
            }
        }
    };
    Ok((header, task))
}

fn ranges_json(filter: &ColorFilter) -> String {
    let ranges: Vec<[[u8; 3]; 2]> = filter
        .ranges()
        .iter()
        .map(|range| [range.lower, range.upper])
        .collect();
    serde_json::to_string(&ranges).expect("ranges serialise")
}

fn slide_mode_name(mode: SlideMode) -> &'static str {
    match mode {
        SlideMode::Match => "match",
        SlideMode::Simple => "simple",
        SlideMode::Comparison => "comparison",
    }
}

/// One job's result, from a worker to the job's node.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct WireResult {
    pub upload_id: u64,
    pub node: u16,
    pub shard: u16,
    pub outcome: WireOutcome,
    pub queued_us: u64,
    pub recognize_us: u64,
    pub batch_size: u32,
    /// The worker's name (per-worker throughput in the node's `/metrics`).
    pub worker: String,
    /// JetStream's delivery count of the job (1: first delivery).
    pub delivered: u32,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum WireOutcome {
    Text {
        text: String,
        confidence: Option<f32>,
    },
    Boxes {
        boxes: Vec<[i64; 4]>,
    },
    Points {
        points: Vec<[i64; 2]>,
    },
    Slide {
        x: usize,
        y: usize,
        confidence: Option<f32>,
        nothing_found: bool,
    },
    /// The contract's code and the reason, as the node's own threads would give them.
    Failed {
        code: u32,
        reason: String,
    },
}

impl WireOutcome {
    pub fn of(outcome: &Result<JobAnswer, JobFailure>) -> WireOutcome {
        match outcome {
            Ok(JobAnswer::Text(answer)) => WireOutcome::Text {
                text: answer.text.clone(),
                confidence: answer.confidence,
            },
            Ok(JobAnswer::Boxes(boxes)) => WireOutcome::Boxes {
                boxes: boxes.clone(),
            },
            Ok(JobAnswer::Points(points)) => WireOutcome::Points {
                points: points.clone(),
            },
            Ok(JobAnswer::Slide(answer)) => WireOutcome::Slide {
                x: answer.target.0,
                y: answer.target.1,
                confidence: answer.confidence,
                nothing_found: answer.nothing_found,
            },
            Err(failure) => WireOutcome::Failed {
                code: crate::contract::of_job_failure(failure).code(),
                reason: failure.to_string(),
            },
        }
    }

    /// The outcome as the node applies it.
    pub fn into_outcome(self) -> Result<JobAnswer, JobFailure> {
        match self {
            WireOutcome::Text { text, confidence } => {
                Ok(JobAnswer::Text(Answer { text, confidence }))
            }
            WireOutcome::Boxes { boxes } => Ok(JobAnswer::Boxes(boxes)),
            WireOutcome::Points { points } => Ok(JobAnswer::Points(points)),
            WireOutcome::Slide {
                x,
                y,
                confidence,
                nothing_found,
            } => Ok(JobAnswer::Slide(SlideAnswer {
                target: (x, y),
                confidence,
                nothing_found,
            })),
            WireOutcome::Failed { code, reason } => Err(JobFailure::Remote {
                reason,
                code: ApiError::from_code(code).unwrap_or(ApiError::RecognitionFailed),
            }),
        }
    }
}

pub fn encode_result(result: &WireResult) -> Vec<u8> {
    serde_json::to_vec(result).expect("results serialise")
}

pub fn decode_result(bytes: &[u8]) -> Result<WireResult, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("result: {e}"))
}

/// The kind of a job header's task.
pub fn kind_of(task: &TaskHeader) -> Kind {
    match task {
        TaskHeader::Ocr { .. } => Kind::Ocr,
        TaskHeader::Detect { .. } | TaskHeader::Click { .. } => Kind::Detect,
        TaskHeader::Slide { .. } => Kind::Slide,
    }
}

/// A forwarded request's name on the platform: the node that forwarded it and its number
/// there (numbers start at the forwarding node's start time in ms x 2^20, so a restarted
/// node does not reuse them). The owner keys the request's charges by it, and the forwarding
/// node acknowledges the answer with it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct ForwardTag {
    pub from: u16,
    pub id: u64,
}

/// The acknowledgement of a forwarded request's answer (docs/cluster.md, "Forwarded writes").
pub fn encode_ack(tag: ForwardTag) -> Vec<u8> {
    serde_json::to_vec(&tag).expect("a tag is JSON")
}

pub fn decode_ack(bytes: &[u8]) -> Result<ForwardTag, String> {
    serde_json::from_slice(bytes)
        .map_err(|e| format!("an acknowledgement that does not parse: {e}"))
}

/// An API request forwarded to the node that owns its user: what the router reads of the
/// head, the client's address, and the body as the frame's payload.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ForwardedHead {
    pub tag: ForwardTag,
    pub method: String,
    pub path: String,
    pub query: String,
    pub version_minor: u8,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// The MCP transport's headers (absent from a node that predates them).
    #[serde(default)]
    pub mcp: crate::http::McpHeaders,
    pub peer: std::net::IpAddr,
}

pub fn encode_forward(head: &ForwardedHead, body: &[u8]) -> Vec<u8> {
    frame(head, &[body])
}

pub fn decode_forward(bytes: &[u8]) -> Result<(ForwardedHead, Vec<u8>), String> {
    let (head, body): (ForwardedHead, &[u8]) = unframe(bytes)?;
    Ok((head, body.to_vec()))
}

#[derive(Serialize, Deserialize)]
struct ResponseHeader {
    status: u16,
    content_type: String,
    headers: Vec<(String, String)>,
    close: bool,
}

/// The content types and header names aiocr answers with (a `Response` holds them as
/// `&'static str`); anything else from a peer becomes the generic type or is dropped.
const CONTENT_TYPES: &[&str] = &[
    // An answer without content (202, 204).
    "",
    "application/json",
    "text/plain; charset=utf-8",
    "text/plain; version=0.0.4; charset=utf-8",
    "text/html; charset=utf-8",
];
const HEADER_NAMES: &[&str] = &[
    "Retry-After",
    "Allow",
    "Location",
    "Access-Control-Allow-Origin",
    "Cache-Control",
    "ETag",
    "Mcp-Session-Id",
    "WWW-Authenticate",
];

pub fn encode_response(response: &Response) -> Vec<u8> {
    let header = ResponseHeader {
        status: response.status,
        content_type: response.content_type.to_string(),
        headers: response
            .extra_headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect(),
        close: response.close,
    };
    frame(&header, &[&response.body])
}

pub fn decode_response(bytes: &[u8]) -> Result<Response, String> {
    let (header, body): (ResponseHeader, &[u8]) = unframe(bytes)?;
    let content_type = CONTENT_TYPES
        .iter()
        .find(|known| **known == header.content_type)
        .copied()
        .unwrap_or("application/octet-stream");
    let mut response = Response::plain(header.status, body.to_vec());
    response.content_type = content_type;
    response.close = header.close;
    for (name, value) in header.headers {
        if let Some(known) = HEADER_NAMES.iter().find(|known| **known == name) {
            response.extra_headers.push((known, value));
        }
    }
    Ok(response)
}

fn frame<H: Serialize>(header: &H, payloads: &[&[u8]]) -> Vec<u8> {
    let json = serde_json::to_vec(header).expect("headers serialise");
    let total = 4 + json.len() + payloads.iter().map(|p| p.len()).sum::<usize>();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    for payload in payloads {
        out.extend_from_slice(payload);
    }
    out
}

fn unframe<'a, H: Deserialize<'a>>(bytes: &'a [u8]) -> Result<(H, &'a [u8]), String> {
    let (length, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or("a frame starts with its header's length")?;
    let length = u32::from_be_bytes(*length) as usize;
    if length > rest.len() {
        return Err("frame header longer than the message".into());
    }
    let (json, payload) = rest.split_at(length);
    let header = serde_json::from_slice(json).map_err(|e| format!("frame header: {e}"))?;
    Ok((header, payload))
}

/// Cuts `rest` into payloads of exactly the given lengths. The lengths come from the
/// message's header, that is from the network: their sum is checked (lengths that overflow
/// a `usize` would otherwise wrap in a release build, pass the comparison and slice out of
/// bounds) before any of them is used.
fn split<const N: usize>(rest: &[u8], lengths: [usize; N]) -> Result<[&[u8]; N], String> {
    let total = lengths
        .iter()
        .try_fold(0usize, |sum, length| sum.checked_add(*length))
        .ok_or("payload lengths overflow: not a message of this version")?;
    if total != rest.len() {
        return Err("payload lengths do not match the message".into());
    }
    let mut parts = [&rest[..0]; N];
    let mut at = 0;
    for (part, length) in parts.iter_mut().zip(lengths) {
        *part = &rest[at..at + length];
        at += length;
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recognition::cache::CacheKey;
    use std::time::Instant;

    fn job(task: Task) -> Job {
        Job {
            upload_id: 42,
            owner_shard: 3,
            task,
            cache_key: CacheKey::ocr([0; 32], Default::default()),
            constraints: Default::default(),
            enqueued_at: Instant::now(),
        }
    }

    #[test]
    fn jobs_cross_unchanged() {
        let filter = ColorFilter::from_options(Some("red,blue"), None).unwrap();
        let options = RecognizeOptions {
            model: "beta".into(),
            custom: None,
            png_fix: true,
            probability: true,
            charset_range: Some(CharsetRange::Characters("abc".into())),
            color_filter: filter,
            reading: Reading::Constrained(crate::engine::TextRules {
                min_chars: 4,
                case_insensitive: true,
                ..Default::default()
            }),
        };
        let click = |hint| Task::Click {
            image: vec![7; 5],
            hint,
            rectangles: true,
        };
        let tasks = [
            click(ClickHint::Text("有她".into())),
            click(ClickHint::Image(vec![3; 4])),
            click(ClickHint::Nothing),
            Task::Ocr {
                image: vec![1, 2, 3],
                options: options.clone(),
            },
            Task::Detect { image: vec![9; 10] },
            Task::Slide {
                target: vec![1],
                background: vec![2, 2],
                mode: SlideMode::Comparison,
            },
        ];
        for task in tasks {
            let sent = job(task);
            let bytes = encode_job(&sent, 5, 1234);
            let (header, task) = decode_job(&bytes).unwrap();
            assert_eq!((header.upload_id, header.node, header.shard), (42, 5, 3));
            assert_eq!(header.deadline_ms, 1234);
            assert_eq!(format!("{task:?}"), format!("{:?}", sent.task));
        }
        assert!(decode_job(&[0, 0, 0, 9, b'{']).is_err());
        let mut bytes = encode_job(&job(Task::Detect { image: vec![1] }), 0, 0);
        bytes.push(0);
        assert!(
            decode_job(&bytes).is_err(),
            "a payload longer than declared"
        );
    }

    #[test]
    fn payload_lengths_that_overflow_are_refused() {
        // Lengths whose sum wraps to the payload's length (1): refused, not sliced.
        let header = JobHeader {
            upload_id: 1,
            node: 0,
            shard: 0,
            deadline_ms: 0,
            task: TaskHeader::Slide {
                target_len: usize::MAX,
                background_len: 2,
                mode: "simple".into(),
            },
        };
        let mut bytes = frame(&header, &[&[7]]);
        let error = decode_job(&bytes).unwrap_err();
        assert!(error.contains("overflow"), "{error}");
        assert!(split(&[7], [usize::MAX, usize::MAX, 3]).is_err());
        assert!(split(&[7], [0, 1]).is_ok(), "lengths that fit");
        bytes.push(0);
        assert!(decode_job(&bytes).is_err());
    }

    #[test]
    fn results_and_answers_cross_unchanged() {
        let outcomes = [
            Ok(JobAnswer::Text(Answer {
                text: "ab".into(),
                confidence: Some(0.5),
            })),
            Ok(JobAnswer::Boxes(vec![[1, 2, 3, 4]])),
            Ok(JobAnswer::Slide(SlideAnswer {
                target: (3, 4),
                confidence: None,
                nothing_found: false,
            })),
        ];
        for outcome in outcomes {
            let wire = WireOutcome::of(&outcome);
            assert_eq!(wire.into_outcome(), outcome);
        }
        let failure = Err(JobFailure::WaitedTooLong { waited_ms: 5 });
        match WireOutcome::of(&failure).into_outcome() {
            Err(JobFailure::Remote { code, reason }) => {
                assert_eq!(code, ApiError::RecognitionFailed);
                assert_eq!(reason, "waited 5 ms in the recognition queue");
            }
            other => panic!("{other:?}"),
        }
        let response = Response::json(503, b"{}".to_vec()).with_header("Retry-After", "1".into());
        let back = decode_response(&encode_response(&response)).unwrap();
        assert_eq!(back, response);
    }
}
