//! The io_uring ring each core runs on, and the flags it is set up with.

use compio::driver::ProactorBuilder;
use compio::runtime::{Runtime, RuntimeBuilder};

/// A core's runtime, on a ring set up with `IORING_SETUP_COOP_TASKRUN` and
/// `IORING_SETUP_TASKRUN_FLAG`: completions that need work in our thread's context (a connect
/// or a read that waited) no longer interrupt the thread with an IPI at once; the work runs at
/// the next `io_uring_enter`, which the flag tells compio to make. Measured against plain
/// setup, and against `SINGLE_ISSUER` + `DEFER_TASKRUN`, in docs/PERFORMANCE.md.
pub(crate) fn runtime() -> std::io::Result<Runtime> {
    let mut proactor = ProactorBuilder::new();
    proactor.coop_taskrun(true).taskrun_flag(true);
    RuntimeBuilder::new().with_proactor(proactor).build()
}
