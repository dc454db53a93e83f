//! # lfr-schemas: the contract between services
//!
//! Every message that crosses the bus is defined here once, together with the subjects it travels on
//! and the JetStream streams that hold it. Services and tests depend on this crate and on nothing
//! else for the shape of the wire, so a change to the contract is a change in one place.
//!
//! - [`wire`]: how a message becomes bytes (a 4-byte header naming kind and version, then bincode),
//!   and the errors a receiver reports when bytes are not what it expects.
//! - [`messages`]: the messages themselves, one module per stage of the pipeline.
//! - [`subjects`]: subject names (per camera, per deployment) and the identifiers allowed in them.
//! - [`streams`]: the topology (streams, buckets, consumers) as plain data; `lfr bus init` declares it.
//! - [`permissions`]: who may do what on the bus, per identity, rendered into NATS permissions.

pub mod messages;
pub mod permissions;
pub mod streams;
pub mod subjects;
pub mod wire;

pub use messages::*;
pub use wire::{Message, WireError};
