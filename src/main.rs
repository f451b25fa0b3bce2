fn main() -> std::process::ExitCode {
    syncwarden::cli::main()
}
