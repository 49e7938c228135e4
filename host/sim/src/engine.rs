//! The continuous-batching model: replicas that each run a step loop, a
//! round-robin router in front, and an optional autoscaler.
//!
//! One engine step takes `step_base + step_per_seq × batch` plus
//! `prefill_per_token ×` the uncached prompt tokens admitted in that step,
//! and gives every running sequence one token. Requests wait while the batch
//! is full (`max_num_seqs`) or their prompt and output would not fit the
//! KV-cache budget. So TTFT and ITL grow with load and throughput flattens
//! at a knee, as on a real server.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::config::{AutoscalerConfig, BatchingConfig};
use super::metrics::Metrics;
use super::text::PromptShape;

/// A sequence for the engine.
pub struct SeqRequest {
    /// The prompt's size and prefix blocks.
    pub shape: PromptShape,
    /// Tokens to generate.
    pub output_tokens: u32,
    /// Where token times go; closed by the response when the client leaves.
    pub tokens: mpsc::UnboundedSender<Instant>,
}

struct ReplicaHandle {
    tx: mpsc::UnboundedSender<SeqRequest>,
    /// Requests assigned and not yet finished.
    load: Arc<AtomicU64>,
    /// Waiting (not yet admitted) requests.
    waiting: Arc<AtomicU64>,
}

/// Sends each request to the next ready replica.
pub struct Router {
    replicas: Mutex<Vec<ReplicaHandle>>,
    next: AtomicUsize,
    config: BatchingConfig,
    metrics: Arc<Metrics>,
    /// Replicas being provisioned.
    pending: AtomicUsize,
}

impl Router {
    /// Start `replicas` replicas.
    pub fn start(config: BatchingConfig, replicas: usize, metrics: Arc<Metrics>) -> Arc<Router> {
        let router = Arc::new(Router {
            replicas: Mutex::new(Vec::new()),
            next: AtomicUsize::new(0),
            config,
            metrics,
            pending: AtomicUsize::new(0),
        });
        for _ in 0..replicas {
            router.add_replica();
        }
        router
    }

    fn add_replica(&self) {
        let (tx, rx) = mpsc::unbounded_channel();
        let load = Arc::new(AtomicU64::new(0));
        let waiting = Arc::new(AtomicU64::new(0));
        let replica = Replica::new(self.config.clone(), self.metrics.clone(), load.clone(), waiting.clone());
        tokio::spawn(replica.run(rx));
        self.metrics
            .kv_capacity
            .fetch_add(self.config.kv_cache_tokens, Ordering::Relaxed);
        self.metrics.replicas.fetch_add(1, Ordering::Relaxed);
        self.replicas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(ReplicaHandle { tx, load, waiting });
    }

    /// Take the newest replica out of rotation; it finishes what it has.
    fn remove_replica(&self) {
        let mut replicas = self.replicas.lock().unwrap_or_else(|p| p.into_inner());
        if replicas.len() > 1 && replicas.pop().is_some() {
            self.metrics
                .kv_capacity
                .fetch_sub(self.config.kv_cache_tokens, Ordering::Relaxed);
            self.metrics.replicas.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Hand a request to a replica. Refused (with why) when it could never fit.
    pub fn submit(&self, req: SeqRequest) -> Result<(), String> {
        let need = u64::from(req.shape.tokens) + u64::from(req.output_tokens);
        if need > self.config.kv_cache_tokens {
            return Err(format!(
                "This model's maximum context length is {} tokens. However, you requested {need} tokens ({} in the prompt, {} for the completion).",
                self.config.kv_cache_tokens, req.shape.tokens, req.output_tokens
            ));
        }
        let replicas = self.replicas.lock().unwrap_or_else(|p| p.into_inner());
        let r = &replicas[self.next.fetch_add(1, Ordering::Relaxed) % replicas.len()];
        r.load.fetch_add(1, Ordering::Relaxed);
        r.waiting.fetch_add(1, Ordering::Relaxed);
        self.metrics.waiting.fetch_add(1, Ordering::Relaxed);
        r.tx.send(req).map_err(|_| "replica stopped".to_string())
    }

    fn totals(&self) -> (usize, u64, u64) {
        let replicas = self.replicas.lock().unwrap_or_else(|p| p.into_inner());
        let load = replicas.iter().map(|r| r.load.load(Ordering::Relaxed)).sum();
        let waiting = replicas.iter().map(|r| r.waiting.load(Ordering::Relaxed)).sum();
        (replicas.len(), load, waiting)
    }

    /// Run the autoscaler until the router is dropped.
    pub fn start_autoscaler(self: &Arc<Self>, config: AutoscalerConfig) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let interval = Duration::from_secs_f64(config.interval_s);
            let hold = Duration::from_secs_f64(config.stabilization_s);
            let (mut up_since, mut down_since): (Option<Instant>, Option<Instant>) = (None, None);
            loop {
                tokio::time::sleep(interval).await;
                let Some(router) = weak.upgrade() else { return };
                let (ready, load, waiting) = router.totals();
                let pending = router.pending.load(Ordering::Relaxed);
                let now = Instant::now();
                let want_up = waiting as f64 / ready as f64 > config.scale_up_waiting;
                let want_down = (load as f64) / (ready as f64) < config.scale_down_load;
                up_since = if want_up { up_since.or(Some(now)) } else { None };
                down_since = if want_down && pending == 0 {
                    down_since.or(Some(now))
                } else {
                    None
                };
                if up_since.is_some_and(|t| now - t >= hold) && ready + pending < config.max_replicas {
                    up_since = None;
                    router.pending.fetch_add(1, Ordering::Relaxed);
                    let r = router.clone();
                    let delay = Duration::from_secs_f64(config.provision_delay_s);
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        r.add_replica();
                        r.pending.fetch_sub(1, Ordering::Relaxed);
                    });
                } else if down_since.is_some_and(|t| now - t >= hold) && ready > config.min_replicas {
                    down_since = None;
                    router.remove_replica();
                }
            }
        });
    }
}

/// A least-recently-used set of prefix blocks.
struct PrefixCache {
    capacity: usize,
    tick: u64,
    blocks: HashMap<u64, u64>,
}

impl PrefixCache {
    /// Count the leading blocks already cached, then cache all of them.
    fn lookup_insert(&mut self, hashes: &[u64]) -> usize {
        self.tick += 1;
        let hits = hashes.iter().take_while(|h| self.blocks.contains_key(h)).count();
        for &h in hashes {
            self.blocks.insert(h, self.tick);
        }
        if self.blocks.len() > self.capacity {
            // Evict the oldest quarter at once: amortised, and good enough for a model.
            let mut ages: Vec<u64> = self.blocks.values().copied().collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() - self.capacity * 3 / 4];
            self.blocks.retain(|_, t| *t >= cutoff);
        }
        hits
    }
}

struct Running {
    req: SeqRequest,
    generated: u32,
    kv: u64,
}

struct Replica {
    config: BatchingConfig,
    metrics: Arc<Metrics>,
    load: Arc<AtomicU64>,
    waiting_count: Arc<AtomicU64>,
    cache: PrefixCache,
}

impl Replica {
    fn new(config: BatchingConfig, metrics: Arc<Metrics>, load: Arc<AtomicU64>, waiting: Arc<AtomicU64>) -> Replica {
        let cache = PrefixCache {
            capacity: config.prefix_cache_blocks.max(4),
            tick: 0,
            blocks: HashMap::new(),
        };
        Replica {
            config,
            metrics,
            load,
            waiting_count: waiting,
            cache,
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<SeqRequest>) {
        let c = self.config.clone();
        let mut waiting: VecDeque<SeqRequest> = VecDeque::new();
        let mut running: Vec<Running> = Vec::new();
        let mut kv_used = 0u64;
        let mut step_start = Instant::now();
        loop {
            if waiting.is_empty() && running.is_empty() {
                match rx.recv().await {
                    Some(r) => waiting.push_back(r),
                    None => return,
                }
                step_start = Instant::now();
            }
            while let Ok(r) = rx.try_recv() {
                waiting.push_back(r);
            }
            // Admit first come, first served, while the batch and the KV budget allow.
            let mut prefill_tokens = 0u64;
            while running.len() < c.max_num_seqs {
                let Some(front) = waiting.front() else { break };
                let kv = u64::from(front.shape.tokens) + u64::from(front.output_tokens);
                if kv_used + kv > c.kv_cache_tokens {
                    break;
                }
                let Some(req) = waiting.pop_front() else { break };
                self.waiting_count.fetch_sub(1, Ordering::Relaxed);
                self.metrics.waiting.fetch_sub(1, Ordering::Relaxed);
                if req.tokens.is_closed() {
                    // The client left while the request waited.
                    self.load.fetch_sub(1, Ordering::Relaxed);
                    continue;
                }
                let cached = if c.prefix_cache {
                    (self.cache.lookup_insert(&req.shape.block_hashes) * c.prefix_block_tokens) as u64
                } else {
                    0
                };
                let prompt = u64::from(req.shape.tokens);
                let cached = cached.min(prompt);
                self.metrics.prefix_cache_queries.fetch_add(prompt, Ordering::Relaxed);
                self.metrics.prefix_cache_hits.fetch_add(cached, Ordering::Relaxed);
                prefill_tokens += prompt - cached;
                kv_used += kv;
                self.metrics.kv_used.fetch_add(kv, Ordering::Relaxed);
                self.metrics.running.fetch_add(1, Ordering::Relaxed);
                running.push(Running { req, generated: 0, kv });
            }
            if running.is_empty() {
                // Everything waiting was abandoned; wait for new work.
                continue;
            }
            let step_ms = c.step_base_ms
                + c.step_per_seq_ms * running.len() as f64
                + c.prefill_per_token_ms * prefill_tokens as f64;
            let step_end = step_start + Duration::from_secs_f64(step_ms / 1000.0);
            tokio::time::sleep_until(step_end.into()).await;
            let now = Instant::now();
            // Keep the model's clock unless the runtime fell behind by more
            // than a step: then restart from now rather than burst to catch up.
            step_start = if now.saturating_duration_since(step_end) > Duration::from_secs_f64(step_ms / 1000.0) {
                now
            } else {
                step_end
            };
            running.retain_mut(|seq| {
                seq.generated += 1;
                let alive = seq.req.tokens.send(now).is_ok();
                let done = !alive || seq.generated >= seq.req.output_tokens;
                if done {
                    kv_used -= seq.kv;
                    self.metrics.kv_used.fetch_sub(seq.kv, Ordering::Relaxed);
                    self.metrics.running.fetch_sub(1, Ordering::Relaxed);
                    self.load.fetch_sub(1, Ordering::Relaxed);
                }
                !done
            });
        }
    }
}
