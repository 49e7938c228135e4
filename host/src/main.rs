// mimalloc: tokenizers and the per-frame path allocate many small, short-lived
// buffers; glibc's malloc spent a third of dataset preparation in malloc/free.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    barrage::cli::main()
}
