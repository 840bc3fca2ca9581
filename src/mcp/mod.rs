//! The Model Context Protocol (MCP) as aiocr serves it at `/mcp`: a tool server over the
//! Streamable HTTP transport, JSON answers only (no SSE stream: every request is answered in
//! its own POST, and the server sends no requests of its own). Pure: nothing here does I/O
//! or reads a clock; the endpoint (`server/endpoints/mcp.rs`) feeds it a request's headers
//! and body and the shard's session table, and runs the tools through the `/v2` paths.
//!
//! | module | concern |
//! |---|---|
//! | `jsonrpc` | one JSON-RPC 2.0 message, typed; result and error answers |
//! | `version` | the protocol versions served, negotiation |
//! | `transport` | the HTTP rules: Origin, `MCP-Protocol-Version`, session header, 401's header |
//! | `lifecycle` | `initialize`, `notifications/initialized`, `ping`, methods |
//! | `sessions` | the bounded session table (per user, per shard, idle time) |
//! | `tools` | the tools' definitions and schemas, a call's reading, the result shapes |

pub mod jsonrpc;
pub mod lifecycle;
pub mod sessions;
pub mod tools;
pub mod transport;
pub mod version;
