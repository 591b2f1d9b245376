//! Guards the allocation budget of the hot paths, counted with a counting global allocator
//! (per thread, so parallel tests do not interfere): serializing an SC_EVENT or SC_REPLY is
//! exactly one allocation (the pre-sized output), and parsing allocates little beyond the
//! owned strings of the result (the reader's open-element stack and attribute scratch list),
//! whether the whole buffer is parsed or a registration as it arrives. Run with `--nocapture` to see the counts reported
//! in docs/PERFORMANCE.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use crnp::protocol::{CallbackReg, Event, Limits, Reply, StatusCode};
use sample_messages::{add_client_10, event_10};

mod sample_messages;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call unchanged to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations (including reallocations) made by `f` on this thread.
fn allocations<T>(f: impl FnOnce() -> T) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    let result = f();
    let after = ALLOCATIONS.with(Cell::get);
    drop(result);
    after - before
}

#[test]
fn allocation_budget() {
    let limits = Limits::default();
    let reg = add_client_10();
    let reg_bytes = reg.to_xml();
    let event = event_10();
    let event_bytes = event.to_xml();
    let reply = Reply::new(StatusCode::Ok, "registration accepted");

    let serialize_event = allocations(|| event.to_xml());
    let serialize_reply = allocations(|| reply.to_xml());
    let arrived = allocations(|| CallbackReg::parse_arrived(&reg_bytes, &limits));
    let parse_reg = allocations(|| CallbackReg::parse(&reg_bytes, &limits));
    let parse_event = allocations(|| Event::parse(&event_bytes, &limits));

    // What the parsed values own, to separate parser overhead from the result itself.
    let owned_reg = allocations(|| reg.clone());
    let owned_event = allocations(|| event.clone());
    println!(
        "serialize SC_EVENT(10 pairs): {serialize_event}; serialize SC_REPLY: {serialize_reply}; \
         parse ADD_CLIENT(10 types): {parse_reg}, as it arrives: {arrived} \
         (the value itself owns {owned_reg}); parse SC_EVENT(10 pairs): {parse_event} \
         (the value itself owns {owned_event})"
    );
    assert_eq!(serialize_event, 1);
    assert_eq!(serialize_reply, 1);
    assert_eq!(arrived, parse_reg, "parse_arrived vs parse");
    assert!(
        parse_reg <= owned_reg + 16,
        "parse ADD_CLIENT: {parse_reg} vs {owned_reg}"
    );
    assert!(
        parse_event <= owned_event + 16,
        "parse SC_EVENT: {parse_event} vs {owned_event}"
    );
}
