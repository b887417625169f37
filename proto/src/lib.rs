//! The `diandan.v1` API: protobuf messages and tonic services generated from
//! `proto/diandan/v1/*.proto`.
//!
//! The messages double as the HTTP JSON bodies (serde) and OpenAPI schemas (utoipa), so the
//! gRPC and HTTP APIs cannot drift apart.

/// Generated code for package `diandan.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("diandan.v1");

    /// The encoded file descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("diandan_descriptor");
}
