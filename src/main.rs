/// jemalloc: under load, glibc malloc and free were the largest item of the profile.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at start-up: a background thread gives freed memory back to the
/// system within a second, so an idle server's resident memory falls back after a burst.
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

use clap::Parser;

fn main() {
    // A jq worker process (see actions/jq_sandbox.rs) needs no runtime and no command line.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == alertflow::actions::jq_sandbox::WORKER_ARG)
    {
        if let Err(e) = alertflow::actions::jq_sandbox::worker_main() {
            eprintln!("jq worker: {e}");
            std::process::exit(1);
        }
        return;
    }
    let cli = alertflow::cli::Cli::parse();
    alertflow::store::skip_memory_statistics();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // Templates and documents are parsed by recursive code; a 16 KiB template (the limit)
        // chaining `.a.a.a...` needs more than the default 2 MiB. Untouched stack costs no RSS.
        .thread_stack_size(32 << 20)
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    if let Err(e) = runtime.block_on(alertflow::cli::main(cli)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
