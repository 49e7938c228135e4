//! `barrage sim`: an embedded simulated LLM inference server.
//!
//! A real HTTP server on loopback that answers like an OpenAI-compatible
//! model server (and like TGI, SGLang, Triton's generate extension and
//! KServe's gRPC, vLLM's and JetStream's gRPC, Anthropic's Messages,
//! OpenAI's Responses, Bedrock's Converse and Gemini's APIs),
//! with a performance model that saturates (continuous batching), a plain
//! model with fixed or distributed latencies, a zero-latency mode for
//! measuring the client, faults on demand, Prometheus metrics named as vLLM
//! (or SGLang, TGI, Triton) names them and a ground-truth record of when
//! each frame was sent.

mod anthropic;
mod bedrock;
pub mod config;
pub mod embed;
pub mod engine;
mod gemini;
pub mod images;
pub mod media;
pub mod metrics;
mod protocol;
mod responses;
pub mod server;
pub mod text;
pub mod truth;

pub use config::{Mode, SimConfig};
pub use server::{Fault, SimError, Simulator};
