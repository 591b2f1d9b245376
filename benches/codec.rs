//! Wire-format speed: parse an ADD_CLIENT with 10 event types, serialize and parse an SC_EVENT
//! with 10 name/value pairs, parse a registration as it arrives, serialize an SC_REPLY; and,
//! as baselines, quick-xml's bare event loop over the same registration and a clone of the
//! parsed value (the allocations any parse into these owned types must make).
//!
//! Each case runs twice: `wall/…` in wall-clock time (criterion's default) and `cpu/…` in
//! this thread's CPU time, which a loaded shared machine inflates far less (time spent
//! descheduled is not counted).
//!
//! `cargo bench --bench codec -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use crnp::protocol::{CallbackReg, Event, Limits, Reply, StatusCode};
use sample_messages::{add_client_10, event_10};

#[path = "../tests/sample_messages/mod.rs"]
mod sample_messages;

fn cases<M: Measurement>(group: &mut BenchmarkGroup<'_, M>) {
    let limits = Limits::default();
    let registration = add_client_10().to_xml();
    let event = event_10();
    let event_bytes = event.to_xml();
    let reply = Reply::new(StatusCode::Ok, "registration accepted");

    group.bench_function("parse ADD_CLIENT, 10 event types", |b| {
        b.iter(|| CallbackReg::parse(black_box(&registration), &limits))
    });
    group.bench_function(
        "baseline: bare quick-xml event loop over that ADD_CLIENT",
        |b| b.iter(|| quick_xml_events(black_box(&registration))),
    );
    let parsed = CallbackReg::parse(&registration, &limits);
    group.bench_function(
        "baseline: clone and drop the parsed ADD_CLIENT value",
        |b| b.iter(|| black_box(&parsed).clone()),
    );
    group.bench_function(
        "parse ADD_CLIENT as it arrives (parse_arrived), 10 event types",
        |b| b.iter(|| CallbackReg::parse_arrived(black_box(&registration), &limits)),
    );
    group.bench_function("serialize SC_EVENT, 10 pairs", |b| {
        b.iter(|| black_box(&event).to_xml())
    });
    group.bench_function("parse SC_EVENT, 10 pairs", |b| {
        b.iter(|| Event::parse(black_box(&event_bytes), &limits))
    });
    group.bench_function("serialize SC_REPLY", |b| {
        b.iter(|| black_box(&reply).to_xml())
    });
}

/// What quick-xml alone costs on a document (no checks, no values): the floor our strict
/// reader builds on.
fn quick_xml_events(bytes: &[u8]) -> usize {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return 0;
    };
    let mut reader = quick_xml::Reader::from_str(text);
    let mut events = 0;
    while let Ok(event) = reader.read_event() {
        if matches!(event, quick_xml::events::Event::Eof) {
            break;
        }
        events += 1;
    }
    events
}

fn wall(c: &mut Criterion<WallTime>) {
    let mut group = c.benchmark_group("wall");
    group.throughput(Throughput::Elements(1));
    cases(&mut group);
    group.finish();
}

fn cpu(c: &mut Criterion<ThreadCpuTime>) {
    let mut group = c.benchmark_group("cpu");
    cases(&mut group);
    group.finish();
}

/// CPU time consumed by the measuring thread, in nanoseconds.
struct ThreadCpuTime;

fn thread_cpu_nanos() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; the clock id is a constant Linux supports.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_nanos()
    }

    fn end(&self, start: u64) -> u64 {
        thread_cpu_nanos().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanoseconds
    }
}

/// Reports every CPU-time figure in plain nanoseconds.
struct Nanoseconds;

impl ValueFormatter for Nanoseconds {
    fn scale_values(&self, _typical: f64, _values: &mut [f64]) -> &'static str {
        "ns (cpu)"
    }

    fn scale_throughputs(
        &self,
        _typical: f64,
        _throughput: &Throughput,
        _values: &mut [f64],
    ) -> &'static str {
        "ns (cpu)"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

criterion_group!(wall_benches, wall);
criterion_group! {
    name = cpu_benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = cpu
}
criterion_main!(wall_benches, cpu_benches);
