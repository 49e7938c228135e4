fn main() -> std::process::ExitCode {
    barrage::cli::main()
}
