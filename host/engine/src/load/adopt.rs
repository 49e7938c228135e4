//! Requests the pacer wrote, on their way to the runtime: each unit's task
//! is polled once on the pacer (which writes its request), and spawned
//! later by whatever wakes it first, or by the adopter task, which takes
//! everything the pacer left meanwhile once a millisecond. Spawning each
//! task as it was written woke a parked runtime worker for a poll that only
//! armed the request's timeout: a context switch per request.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Poll `task` once on this thread, then leave it to be spawned on the
/// runtime by whatever wakes it first, or by `adopter`. On the pacer the
/// first poll writes the request to its connection at the scheduled time (a
/// direct HTTP/1.1 connection is driven by the exchange itself), instead of
/// whenever a busy runtime worker gets to a newly spawned task: under load
/// that wait, not the pacer, was most of the send lag. Spawning it there and
/// then woke a parked worker for a poll that only armed its timeout, a
/// context switch per request; instead its response's first bytes spawn it
/// on the worker that reads them, or the adopter takes it within
/// [`ADOPT_EVERY`] (arming its timeout and cancel signal there), whichever
/// comes first.
pub(super) fn start_here(
    handle: &tokio::runtime::Handle,
    adopter: &Adopter,
    task: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let _runtime = handle.enter();
    let mut task: ParkedTask = Box::pin(task);
    let parked = Arc::new(Parked {
        handle: handle.clone(),
        state: std::sync::Mutex::new(ParkState::Polling { woken: false }),
    });
    let waker = std::task::Waker::from(parked.clone());
    let mut cx = std::task::Context::from_waker(&waker);
    if crate::transport::polled_off_runtime(|| task.as_mut().poll(&mut cx).is_ready()) {
        return;
    }
    let mut state = parked.lock();
    if matches!(*state, ParkState::Polling { woken: true }) {
        *state = ParkState::Spawned;
        drop(state);
        handle.spawn(task);
    } else {
        *state = ParkState::Parked(task);
        drop(state);
        adopter.hand_over(parked);
    }
}

type ParkedTask = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A task polled once off the runtime, until it is spawned.
struct Parked {
    handle: tokio::runtime::Handle,
    state: std::sync::Mutex<ParkState>,
}

enum ParkState {
    /// Its first poll is running; `woken` if it was woken meanwhile.
    Polling { woken: bool },
    /// Waiting to be woken or adopted.
    Parked(ParkedTask),
    /// On the runtime, which polls it with wakers of its own from then on.
    Spawned,
}

impl Parked {
    fn lock(&self) -> std::sync::MutexGuard<'_, ParkState> {
        // Every change under the lock is one assignment: a panic cannot
        // leave it half-made.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::task::Wake for Parked {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, ParkState::Spawned) {
            ParkState::Parked(task) => {
                drop(state);
                self.handle.spawn(task);
            }
            ParkState::Polling { .. } => *state = ParkState::Polling { woken: true },
            ParkState::Spawned => {}
        }
    }
}

/// Longest a task the pacer polled waits to be spawned when nothing wakes
/// it: a task on the runtime, woken once per period, spawns all that came
/// meanwhile, one worker wake-up for many requests.
const ADOPT_EVERY: Duration = Duration::from_millis(1);

/// The pacer's side of the task that spawns what the pacer polled; the
/// task ends when this is dropped.
pub(super) struct Adopter {
    parked: std::sync::mpsc::Sender<Arc<Parked>>,
    signal: Arc<AdoptSignal>,
    task: tokio::task::AbortHandle,
}

#[derive(Default)]
struct AdoptSignal {
    /// The task waits for work (the queue was empty): a hand-over wakes it.
    idle: std::sync::atomic::AtomicBool,
    wake: tokio::sync::Notify,
}

impl Adopter {
    /// Start the adopting task on the current runtime.
    pub fn start() -> Adopter {
        let (parked, queue) = std::sync::mpsc::channel();
        let signal = Arc::new(AdoptSignal::default());
        let task = tokio::spawn(adopt(queue, signal.clone())).abort_handle();
        Adopter { parked, signal, task }
    }

    fn hand_over(&self, parked: Arc<Parked>) {
        let _ = self.parked.send(parked);
        if self.signal.idle.swap(false, Ordering::SeqCst) {
            self.signal.wake.notify_one();
        }
    }
}

impl Drop for Adopter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Spawn what the pacer handed over, every [`ADOPT_EVERY`] while it comes;
/// when none came, wait to be told.
async fn adopt(queue: std::sync::mpsc::Receiver<Arc<Parked>>, signal: Arc<AdoptSignal>) {
    use std::sync::mpsc::TryRecvError;
    use std::task::Wake;
    loop {
        let mut adopted = false;
        loop {
            match queue.try_recv() {
                Ok(parked) => {
                    parked.wake_by_ref();
                    adopted = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        if adopted {
            tokio::time::sleep(ADOPT_EVERY).await;
            continue;
        }
        signal.idle.store(true, Ordering::SeqCst);
        // A hand-over between the last look and `idle` is seen here; one
        // after it notifies (a notification with no waiter is kept).
        match queue.try_recv() {
            Ok(parked) => {
                signal.idle.store(false, Ordering::SeqCst);
                parked.wake_by_ref();
            }
            Err(TryRecvError::Empty) => signal.wake.notified().await,
            Err(TryRecvError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    /// What a [`TwoPolls`] does with its waker on its first poll.
    type First = Box<dyn FnOnce(&Waker) + Send>;

    /// Pending on its first poll, having done `first` with the waker;
    /// done on the next, telling `done`.
    struct TwoPolls {
        first: Option<First>,
        done: Option<tokio::sync::oneshot::Sender<bool>>,
    }

    impl Future for TwoPolls {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            match self.first.take() {
                Some(first) => {
                    first(cx.waker());
                    Poll::Pending
                }
                None => {
                    let on_runtime = tokio::task::try_id().is_some();
                    if let Some(done) = self.done.take() {
                        let _ = done.send(on_runtime);
                    }
                    Poll::Ready(())
                }
            }
        }
    }

    /// An adopter that never takes anything: only wake-ups spawn.
    fn adopting_nothing() -> Adopter {
        let (parked, queue) = std::sync::mpsc::channel();
        let task = tokio::spawn(async move {
            let _queue = queue;
            std::future::pending::<()>().await
        });
        Adopter {
            parked,
            signal: Arc::default(),
            task: task.abort_handle(),
        }
    }

    /// Start a [`TwoPolls`] from a thread of its own, as the pacer does;
    /// true once its second poll ran on the runtime.
    async fn second_poll_on_the_runtime(adopter: Adopter, first: impl FnOnce(&Waker) + Send + 'static) -> bool {
        let adopter = Arc::new(adopter);
        let handle = tokio::runtime::Handle::current();
        let (done, second) = tokio::sync::oneshot::channel();
        let task = TwoPolls {
            first: Some(Box::new(first)),
            done: Some(done),
        };
        let pacer = {
            let adopter = adopter.clone();
            std::thread::spawn(move || start_here(&handle, &adopter, task))
        };
        pacer.join().unwrap();
        let polled = tokio::time::timeout(Duration::from_secs(60), second).await;
        matches!(polled, Ok(Ok(true)))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_task_nothing_wakes_is_spawned_by_the_adopter() {
        // Like a request whose server never answers: only the adopter, then
        // its timeout armed on the runtime, can end it.
        assert!(second_poll_on_the_runtime(Adopter::start(), |_| {}).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_task_woken_later_or_during_its_first_poll_is_spawned() {
        let later = |waker: &Waker| {
            let waker = waker.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                waker.wake();
            });
        };
        assert!(second_poll_on_the_runtime(adopting_nothing(), later).await);
        assert!(second_poll_on_the_runtime(adopting_nothing(), |waker| waker.wake_by_ref()).await);
    }
}
