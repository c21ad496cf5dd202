//! A map over a channel's items on several threads whose results come out in the items'
//! order, whichever thread finishes first: a single chain has its chunks decoded this way.
//!
//! Each thread takes the next item and, in the same step (under one lock), queues a slot
//! for its result; the slots leave in the order the items arrived, and a reader of the
//! results waits on each slot in turn.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, bounded};

/// How many items per thread may be taken ahead of the reader of the results. With one
/// (each thread at most about one item ahead of the other), a thread that finished its item
/// early waited, holding the gate, until the reader took the slow one's result: on two
/// cores about a tenth of the time neither decoding thread ran. Four lets the threads run
/// apart; what a pipeline holds in flight is still bounded by its chunk permits
/// (`run.rs`), so memory grows by little (peak RSS 164 → 169 MB with the anomaly stage).
const AHEAD: usize = 4;

/// Results in input order (see the module's doc).
pub(crate) struct Ordered<U> {
    slots: Receiver<Receiver<U>>,
}

impl<U> Ordered<U> {
    /// The results in input order. They end when the input does, or at the first result
    /// whose thread panicked (the join of its handle reports that).
    pub(crate) fn results(self) -> impl Iterator<Item = U> {
        self.slots.into_iter().map_while(|slot| slot.recv().ok())
    }
}

/// Start `threads` threads (named `name-0`, …), each applying its own function (made by
/// `make`) to the items of `input`. Up to [`AHEAD`] × `threads` items are taken ahead of
/// the reader of the results (being computed, or done and waiting to be taken).
pub(crate) fn spawn<T, U, F>(
    name: &str,
    input: &Receiver<T>,
    threads: usize,
    make: impl Fn() -> F,
) -> std::io::Result<(Ordered<U>, Vec<JoinHandle<()>>)>
where
    T: Send + 'static,
    U: Send + 'static,
    F: FnMut(T) -> U + Send + 'static,
{
    let (order_tx, order_rx) = bounded::<Receiver<U>>(AHEAD * threads.max(1));
    let gate = Arc::new(Mutex::new((input.clone(), order_tx)));
    let mut handles = Vec::with_capacity(threads);
    for n in 0..threads {
        let (mut f, gate) = (make(), gate.clone());
        let spawned = std::thread::Builder::new().name(format!("{name}-{n}")).spawn(move || {
            loop {
                let (item, slot) = {
                    let Ok(gate) = gate.lock() else { return };
                    let Ok(item) = gate.0.recv() else { return };
                    let (slot_tx, slot_rx) = bounded(1);
                    if gate.1.send(slot_rx).is_err() {
                        return;
                    }
                    (item, slot_tx)
                };
                if slot.send(f(item)).is_err() {
                    return;
                }
            }
        })?;
        handles.push(spawned);
    }
    Ok((Ordered { slots: order_rx }, handles))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn results_keep_the_input_order_when_later_items_finish_first() {
        let (tx, rx) = bounded::<u64>(4);
        let (ordered, handles) = spawn("test-ordered", &rx, 3, || {
            |n: u64| {
                // Earlier items take longer, so later ones finish first.
                std::thread::sleep(Duration::from_micros((20 - n % 20) * 300));
                n * 10
            }
        })
        .unwrap();
        drop(rx);
        let feeder = std::thread::spawn(move || {
            for n in 0..200 {
                tx.send(n).unwrap();
            }
        });
        let out: Vec<u64> = ordered.results().collect();
        feeder.join().unwrap();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(out, (0..200).map(|n| n * 10).collect::<Vec<_>>());
    }

    #[test]
    fn a_panicking_thread_ends_the_results_at_its_item() {
        let (tx, rx) = bounded::<u64>(16);
        for n in 0..10 {
            tx.send(n).unwrap();
        }
        drop(tx);
        let (ordered, handles) = spawn("test-ordered", &rx, 2, || {
            |n: u64| {
                assert_ne!(n, 5, "item 5 fails");
                n
            }
        })
        .unwrap();
        let out: Vec<u64> = ordered.results().collect();
        assert_eq!(out, vec![0, 1, 2, 3, 4]);
        assert!(handles.into_iter().map(|h| h.join()).any(|r| r.is_err()));
    }
}
