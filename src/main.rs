// glibc's allocator spent a third of the sync's CPU time on its own bookkeeping (consolidating
// free lists each time a page buffer of over 64 KiB was freed); mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    syncwarden::cli::main()
}
