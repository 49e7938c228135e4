//! Barrage: a load generator and benchmark host for LLM inference servers.
//!
//! The library does the work; `main.rs` only calls [`cli::main`]. Start with
//! `docs/architecture.md` for the map of components.

pub mod cli;
pub mod dataset;
pub mod framing;
pub mod load;
pub mod metrics;
pub mod plugin;
pub mod report;
pub mod results;
pub mod rng;
pub mod signals;
pub mod sim;
pub mod tls;
pub mod tokenizer;
pub mod transport;
