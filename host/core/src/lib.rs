//! What every part of Barrage shares: the host's request and response types,
//! the native framers, the seeded random source, TLS settings, the clock, the
//! descriptor limit and table, and a run's headline figures.
//! It depends on no other Barrage crate.

pub mod body;
pub mod clock;
pub mod descriptors;
pub mod framing;
pub mod headline;
pub mod invalid;
pub mod rng;
pub mod tls;
pub mod types;
