//! The endpoint families of the `/v2` contract, one file each. Every endpoint that touches a
//! user's data has a typed request: parsed and checked here, on the shard the connection is
//! on, then run on the shard that owns the data (`owner::OwnerCommand`). Uploads, the largest
//! family, have a module of their own (`server/upload/`). `mcp.rs` is the MCP endpoint: the
//! same requests as tools of an agent (the protocol itself is src/mcp).

pub mod accounts;
pub mod admin;
pub mod apikey;
pub mod cached;
pub mod mcp;
pub mod models;
pub mod node;
pub mod results;
pub mod server_state;
pub mod stats;
pub mod tokens;
pub mod uploads;
pub mod user;

pub use node::describe_node;
