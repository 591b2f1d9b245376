//! The deadlines of a core's delivery attempts, without a runtime timer per attempt.
//!
//! Every attempt gets the same timeout (`--client-timeout`), so deadlines come in the order
//! attempts start: one list in start order is also in deadline order. The list is intrusive
//! (links are slot numbers in one `Vec`), so an attempt that ends removes its entry at once and
//! the list only ever holds attempts in flight. One ticker task sleeps until the head's
//! deadline, marks every attempt whose deadline passed and wakes it; the attempt then drops its
//! I/O future, which cancels its io_uring operations, as a timer would have.
//!
//! `compio::time::timeout` per attempt cost a timer entry, a `select` and a wake-up each (about
//! 3 % of a core's samples); the ticker sleeps once per timeout period while nothing expires.

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// No slot: the end of the list, or of the free list.
const NIL: u32 = u32::MAX;

/// One attempt's entry.
#[derive(Debug)]
struct Node {
    deadline: Instant,
    /// The attempt's task, woken when its deadline passes.
    waker: Option<Waker>,
    expired: bool,
    /// Earlier neighbour in the list (or the next free slot while free).
    prev: u32,
    /// Later neighbour in the list.
    next: u32,
}

/// The list: slots in a `Vec`, linked in start order; free slots are reused.
#[derive(Debug)]
struct List {
    nodes: Vec<Node>,
    head: u32,
    tail: u32,
    free: u32,
    /// The ticker, while it waits for an attempt with a deadline still ahead.
    ticker: Option<Waker>,
}

/// A core's attempt deadlines; `Rc`-shared by the attempts and the ticker (one thread).
#[derive(Debug)]
pub(crate) struct Deadlines {
    timeout: Duration,
    list: RefCell<List>,
    /// Whether the ticker task is running.
    ticking: Cell<bool>,
}

impl Deadlines {
    /// Deadlines `timeout` after each attempt's start.
    pub(crate) fn new(timeout: Duration) -> Rc<Self> {
        Rc::new(Deadlines {
            timeout,
            list: RefCell::new(List {
                nodes: Vec::new(),
                head: NIL,
                tail: NIL,
                free: NIL,
                ticker: None,
            }),
            ticking: Cell::new(false),
        })
    }

    /// Runs `attempt` until it finishes (`Some`) or its deadline passes (`None`, and `attempt`
    /// is dropped, cancelling its I/O).
    pub(crate) async fn run<F: Future>(self: &Rc<Self>, attempt: F) -> Option<F::Output> {
        if !self.ticking.replace(true) {
            compio::runtime::spawn(Rc::clone(self).tick()).detach();
        }
        let entry = Entry {
            owner: self,
            slot: self.insert(Instant::now() + self.timeout),
        };
        let mut attempt = pin!(attempt);
        poll_fn(|cx| {
            if entry.expired() {
                return Poll::Ready(None);
            }
            match attempt.as_mut().poll(cx) {
                Poll::Ready(output) => Poll::Ready(Some(output)),
                Poll::Pending => {
                    entry.set_waker(cx.waker());
                    Poll::Pending
                }
            }
        })
        .await
    }

    fn insert(&self, deadline: Instant) -> u32 {
        let mut list = self.list.borrow_mut();
        let node = Node {
            deadline,
            waker: None,
            expired: false,
            prev: list.tail,
            next: NIL,
        };
        let slot = match list.free {
            NIL => {
                list.nodes.push(node);
                u32::try_from(list.nodes.len() - 1).unwrap_or(NIL)
            }
            free => {
                list.free = list.nodes[free as usize].prev;
                list.nodes[free as usize] = node;
                free
            }
        };
        match list.tail {
            NIL => list.head = slot,
            tail => list.nodes[tail as usize].next = slot,
        }
        if let Some(ticker) = list.ticker.take() {
            ticker.wake();
        }
        list.tail = slot;
        slot
    }

    fn remove(&self, slot: u32) {
        let mut list = self.list.borrow_mut();
        let (prev, next) = {
            let node = &mut list.nodes[slot as usize];
            node.waker = None;
            (node.prev, node.next)
        };
        match prev {
            NIL => list.head = next,
            prev => list.nodes[prev as usize].next = next,
        }
        match next {
            NIL => list.tail = prev,
            next => list.nodes[next as usize].prev = prev,
        }
        list.nodes[slot as usize].prev = list.free;
        list.free = slot;
    }

    /// Marks and wakes every attempt whose deadline is at or before `now`; returns the next
    /// deadline, if any attempt is in flight.
    fn expire(&self, now: Instant) -> Option<Instant> {
        let mut list = self.list.borrow_mut();
        let mut slot = list.head;
        while slot != NIL {
            let node = &mut list.nodes[slot as usize];
            if node.deadline > now {
                return Some(node.deadline);
            }
            if !node.expired {
                node.expired = true;
                if let Some(waker) = node.waker.take() {
                    waker.wake();
                }
            }
            slot = node.next;
        }
        None
    }

    /// The ticker: sleeps until the earliest deadline ahead, expires what is due, and waits for
    /// the next attempt while none has a deadline ahead. It lives as long as the core's runtime.
    async fn tick(self: Rc<Self>) {
        loop {
            match self.expire(Instant::now()) {
                Some(next) => compio::time::sleep_until(next).await,
                None => {
                    let mut waiting = false;
                    poll_fn(|cx| {
                        let mut list = self.list.borrow_mut();
                        if waiting && list.ticker.is_none() {
                            return Poll::Ready(());
                        }
                        list.ticker = Some(cx.waker().clone());
                        waiting = true;
                        Poll::Pending
                    })
                    .await
                }
            }
        }
    }
}

/// An attempt's place in the list, removed when the attempt ends either way.
struct Entry<'a> {
    owner: &'a Deadlines,
    slot: u32,
}

impl Entry<'_> {
    fn expired(&self) -> bool {
        self.owner.list.borrow().nodes[self.slot as usize].expired
    }

    fn set_waker(&self, waker: &Waker) {
        let mut list = self.owner.list.borrow_mut();
        let node = &mut list.nodes[self.slot as usize];
        if !node.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            node.waker = Some(waker.clone());
        }
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        self.owner.remove(self.slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> compio::runtime::Runtime {
        compio::runtime::Runtime::new().expect("runtime")
    }

    #[test]
    fn an_attempt_that_finishes_in_time_returns_its_output_and_leaves_no_entry() {
        runtime().block_on(async {
            let deadlines = Deadlines::new(Duration::from_secs(5));
            let output = deadlines
                .run(async {
                    compio::time::sleep(Duration::from_millis(5)).await;
                    7
                })
                .await;
            assert_eq!(output, Some(7));
            assert_eq!(deadlines.list.borrow().head, NIL);
        });
    }

    #[test]
    fn an_attempt_past_its_deadline_is_dropped_while_others_go_on() {
        runtime().block_on(async {
            let deadlines = Deadlines::new(Duration::from_millis(50));
            let dropped = Rc::new(Cell::new(false));
            struct Flag(Rc<Cell<bool>>);
            impl Drop for Flag {
                fn drop(&mut self) {
                    self.0.set(true);
                }
            }
            let flag = Flag(Rc::clone(&dropped));
            let slow = deadlines.run(async move {
                let _flag = flag;
                compio::time::sleep(Duration::from_secs(10)).await;
            });
            let fast = deadlines.run(async {
                compio::time::sleep(Duration::from_millis(10)).await;
                1
            });
            let started = Instant::now();
            let (slow, fast) = futures_join(slow, fast).await;
            assert_eq!((slow, fast), (None, Some(1)));
            assert!(dropped.get());
            assert!(started.elapsed() < Duration::from_secs(2));
            assert_eq!(deadlines.list.borrow().head, NIL);
        });
    }

    #[test]
    fn slots_are_reused_and_the_list_keeps_start_order() {
        let deadlines = Deadlines::new(Duration::from_secs(1));
        let start = Instant::now();
        let a = deadlines.insert(start);
        let b = deadlines.insert(start + Duration::from_millis(1));
        let c = deadlines.insert(start + Duration::from_millis(2));
        deadlines.remove(b);
        let d = deadlines.insert(start + Duration::from_millis(3));
        assert_eq!(d, b, "the freed slot is reused");
        assert_eq!(
            deadlines.expire(start + Duration::from_micros(1500)),
            Some(start + Duration::from_millis(2))
        );
        let list = deadlines.list.borrow();
        assert!(list.nodes[a as usize].expired);
        assert!(!list.nodes[c as usize].expired && !list.nodes[d as usize].expired);
        assert_eq!((list.head, list.tail), (a, d));
    }

    /// Polls both futures to completion on one task.
    async fn futures_join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
        let (mut a, mut b) = (pin!(a), pin!(b));
        let (mut out_a, mut out_b) = (None, None);
        poll_fn(|cx| {
            if out_a.is_none()
                && let Poll::Ready(v) = a.as_mut().poll(cx)
            {
                out_a = Some(v);
            }
            if out_b.is_none()
                && let Poll::Ready(v) = b.as_mut().poll(cx)
            {
                out_b = Some(v);
            }
            if out_a.is_some() && out_b.is_some() {
                Poll::Ready((out_a.take().unwrap(), out_b.take().unwrap()))
            } else {
                Poll::Pending
            }
        })
        .await
    }
}
