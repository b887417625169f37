//! The `diandan` command as a library, so tests and benchmarks drive exactly what users run:
//!
//! - [`audit`](mod@audit): `diandan audit` — verify the log and exports offline or online;
//! - [`server`]: `diandan up` — every service in one process on the embedded store;
//! - [`client`]: the whole gRPC API as one signed-in user, and the order loop as a function;
//! - [`demo`]: the demo district seeded through the API;
//! - [`bootstrap`]: `diandan org bootstrap` and `diandan demo` — an organisation on any store;
//! - [`bench`](mod@bench): `diandan bench` — durable appends vs raw SQLite, full flows through gRPC.

pub mod audit;
pub mod bench;
pub mod bootstrap;
pub mod client;
pub mod demo;
pub mod history;
pub mod serve;
pub mod server;
