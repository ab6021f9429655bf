//! Generated protobuf code for Fengqiao. Nothing here is written by hand, except the `Debug` of
//! [`events::Party`], which must not show personal data, and the API's codec ([`codec`]).
//!
//! `events` (the log of record) is always present and needs only `prost`; `api` (the gRPC
//! services) comes with the default `grpc` feature, so the pure domain crate can use the event
//! messages without pulling in tonic.

#![allow(clippy::all, missing_docs, unreachable_pub)]

/// Module tree mirroring the proto packages, as the generated cross-package paths expect.
pub mod fengqiao {
    pub mod events {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/fengqiao.events.v1.rs"));
        }
    }
    #[cfg(feature = "grpc")]
    pub mod api {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/fengqiao.api.v1.rs"));
        }
    }
}

/// The API's gRPC codec.
#[cfg(feature = "grpc")]
pub mod codec;

/// Event messages: the envelope, the commit and every past-tense event.
pub use fengqiao::events::v1 as events;

/// gRPC services, requests and responses.
#[cfg(feature = "grpc")]
pub use fengqiao::api::v1 as api;

/// Encoded `FileDescriptorSet` of every compiled proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/fengqiao_descriptor.bin"));

impl std::fmt::Debug for events::Party {
    /// Shows the party's role only: names, phone and ID numbers never reach a log this way.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Party").field("role", &self.role).finish_non_exhaustive()
    }
}
