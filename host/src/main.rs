//! The `sluice` binary: parse the command line, call the library, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    keep_freed_memory();
    sluice::telemetry::init();
    match sluice::cli::main(sluice::cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            failure.into()
        }
    }
}

/// Bytes an allocation needs before glibc gives it its own mapping, and bytes free at the top
/// of a heap before glibc hands them back to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 16 << 20;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: i32 = 128 << 20;

/// Keep freed memory for the next chunk rather than hand it back to the kernel. A run frees
/// and allocates the same few megabytes per chunk, on several threads; glibc's default (a
/// threshold that moves with what was freed) kept trimming the threads' heaps, so each new
/// read buffer and batch touched fresh pages, a page fault for each 4 KiB: three times the
/// faults, a tenth of the CPU in the kernel. Peak RSS is unchanged (the same memory is reused,
/// not more kept), so the bounds are generous: a buffer of up to 16 MiB comes from the heap,
/// and up to 128 MiB free at a heap's top stay there.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets two of the allocator's parameters; it is called first thing
    // in main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
