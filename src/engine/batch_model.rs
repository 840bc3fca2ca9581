//! Makes the batch dimension of an ONNX model's inputs dynamic, at load time.
//!
//! ddddocr's models declare batch 1. For `common.onnx` a dynamic batch gives answers identical
//! to single runs (see the parity notes), so its first input dimension is rewritten from
//! `dim_value: 1` to `dim_param: "batch"`. This walks just the protobuf path
//! ModelProto.graph(7) -> GraphProto.input(11) -> ValueInfoProto.type(2) -> TypeProto.tensor_type(1)
//! -> TensorShapeProto shape(2) -> first Dimension(1), re-encoding the lengths along the way;
//! every other byte (the weights) is copied as it is.

const MODEL_GRAPH: u64 = 7;
const GRAPH_INPUT: u64 = 11;
const VALUE_INFO_TYPE: u64 = 2;
const TYPE_TENSOR: u64 = 1;
const TENSOR_SHAPE: u64 = 2;
const SHAPE_DIM: u64 = 1;
const DIM_VALUE: u64 = 1;
const DIM_PARAM: u64 = 2;
const WIRE_VARINT: u64 = 0;
const WIRE_I64: u64 = 1;
const WIRE_LEN: u64 = 2;
const WIRE_I32: u64 = 5;

pub fn load_dynamic_batch(model: &[u8]) -> Result<Vec<u8>, String> {
    let mut changed = 0;
    let out = rewrite(
        model,
        &[
            MODEL_GRAPH,
            GRAPH_INPUT,
            VALUE_INFO_TYPE,
            TYPE_TENSOR,
            TENSOR_SHAPE,
        ],
        &mut changed,
    )?;
    if changed == 0 {
        return Err("no fixed batch dimension found in the model's inputs".into());
    }
    Ok(out)
}

/// One protobuf field: its number, wire type, and where its payload lies in the message.
struct Field {
    number: u64,
    wire: u64,
    /// The whole field, key included.
    start: usize,
    end: usize,
    /// The payload of a length-delimited field.
    payload: (usize, usize),
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at).ok_or("truncated varint")?;
        *at += 1;
        value |= ((byte & 0x7F) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint too long".into())
}

fn write_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7F) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A length-delimited field: key, length, payload.
fn write_len_field(number: u64, payload: &[u8], out: &mut Vec<u8>) {
    write_varint(number << 3 | WIRE_LEN, out);
    write_varint(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

fn fields(message: &[u8]) -> Result<Vec<Field>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < message.len() {
        let start = at;
        let key = read_varint(message, &mut at)?;
        let (number, wire) = (key >> 3, key & 7);
        let mut payload = (at, at);
        match wire {
            WIRE_VARINT => {
                read_varint(message, &mut at)?;
            }
            WIRE_I64 => at += 8,
            WIRE_I32 => at += 4,
            WIRE_LEN => {
                let length = read_varint(message, &mut at)? as usize;
                payload = (at, at + length);
                at += length;
            }
            other => return Err(format!("unsupported wire type {other}")),
        }
        if at > message.len() {
            return Err("truncated field".into());
        }
        out.push(Field {
            number,
            wire,
            start,
            end: at,
            payload,
        });
    }
    Ok(out)
}

/// Copies `message`, descending into the fields named by `path`; at the end of the path (a
/// TensorShapeProto) the first dimension becomes dynamic.
fn rewrite(message: &[u8], path: &[u64], changed: &mut usize) -> Result<Vec<u8>, String> {
    let Some((&next, rest)) = path.split_first() else {
        return with_dynamic_first_dim(message, changed);
    };
    let mut out = Vec::with_capacity(message.len());
    for field in fields(message)? {
        if field.number == next && field.wire == WIRE_LEN {
            let inner = rewrite(&message[field.payload.0..field.payload.1], rest, changed)?;
            write_len_field(next, &inner, &mut out);
        } else {
            out.extend_from_slice(&message[field.start..field.end]);
        }
    }
    Ok(out)
}

fn with_dynamic_first_dim(shape: &[u8], changed: &mut usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(shape.len() + 8);
    let mut first = true;
    for field in fields(shape)? {
        if first && field.number == SHAPE_DIM && field.wire == WIRE_LEN {
            first = false;
            let mut dim = Vec::new();
            write_len_field(DIM_PARAM, b"batch", &mut dim);
            // Keep everything but the fixed value (e.g. a denotation).
            let inner = &shape[field.payload.0..field.payload.1];
            for dim_field in fields(inner)? {
                if dim_field.number != DIM_VALUE && dim_field.number != DIM_PARAM {
                    dim.extend_from_slice(&inner[dim_field.start..dim_field.end]);
                }
            }
            write_len_field(SHAPE_DIM, &dim, &mut out);
            *changed += 1;
        } else {
            out.extend_from_slice(&shape[field.start..field.end]);
        }
    }
    Ok(out)
}
