//! End-to-end tests: they drive the `barrage` binary (and, where a test
//! needs to look inside a run, the `barrage` library) against real plugins
//! built by the test suite.

mod common;

mod autoscaling;
mod bad_plugins;
mod boundary;
mod capacity;
mod cli;
mod codecs;
mod conformance;
mod contract;
mod datasets;
mod distributed;
mod examples;
mod export;
mod guests;
mod hostile;
mod image;
mod interop;
mod items;
mod kubernetes;
mod lock;
mod multimodal;
mod oci;
mod overload;
mod protocols;
mod report;
mod run;
mod sdk;
mod secrets;
mod sim;
mod thresholds;
mod tls;
mod workers;
